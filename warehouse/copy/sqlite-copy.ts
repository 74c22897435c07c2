import type Database from 'better-sqlite3';
import { withRawConnection } from '../dialects/raw-connection.ts';
import { quoteIdentifier as q, type CopyDialect, type CopyRow, type CopyValue } from './copy-dialect.ts';
import { inBatches } from '../core/in-batches.ts';

/** better-sqlite3 binds numbers, BigInt, strings, Buffers and null. */
function bindable(value: CopyValue): string | number | bigint | Buffer | null {
  if (typeof value === 'boolean') return value ? 1 : 0;
  if (value instanceof Date) return value.toISOString();
  return value;
}

export const sqliteCopy: CopyDialect = {
  async fetchTableNames(executor) {
    const rows = await executor.raw<Array<{ name: string }>>(
      "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    );
    return rows.map((r) => r.name);
  },

  async fetchColumns(executor, table) {
    const rows = await executor.raw<Array<{ name: string; type: string }>>(
      'SELECT name, type FROM pragma_table_info(?) ORDER BY cid',
      [table],
    );
    return rows.map((r) => {
      const declaredType = r.type.toLowerCase();
      const length = /\((\d+)\)/.exec(declaredType)?.[1];
      return { name: r.name, declaredType, maxLength: length === undefined ? null : Number(length) };
    });
  },

  async fetchReferences(executor) {
    const tables = await sqliteCopy.fetchTableNames(executor);
    const references = [];
    for (const table of tables) {
      const keys = await executor.raw<Array<{ table: string }>>(
        'SELECT "table" FROM pragma_foreign_key_list(?)',
        [table],
      );
      for (const key of keys) references.push({ table, references: key.table });
    }
    return references;
  },

  async *readRows(trx, table, columns, batchRows) {
    // The iterator holds the connection; nothing else runs on it until the table is read.
    const db = await withRawConnection(trx, (connection: Database.Database) => connection);
    const statement = db.prepare(
      `SELECT ${columns.map(q).join(', ')} FROM ${q(table)} ORDER BY ${storedOrder(db, table)}`,
    );
    yield* inBatches(
      statement.safeIntegers(true).raw(true).iterate() as IterableIterator<CopyRow>,
      batchRows,
    );
  },

  async openRowWriter(trx, table, columns) {
    const sql = `INSERT INTO ${q(table)} (${columns.map(q).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`;
    // One prepared statement per table, one row per run, inside the copy's transaction: SQLite's
    // fastest path, and far below its limit of 32,766 bound values per statement.
    const statement = await withRawConnection(trx, (db: Database.Database) => db.prepare(sql));
    return {
      write(rows) {
        for (const row of rows) statement.run(row.map(bindable));
        return Promise.resolve();
      },
      close: () => Promise.resolve(),
      abort: () => Promise.resolve(),
    };
  },

  // An AUTOINCREMENT counter follows the largest id inserted, copied ids included.
  resetSequences: () => Promise.resolve([]),

  // One file, one path: copyHub compares the files' real paths before it opens them.
  holdAsSource: () => Promise.resolve(),
  isHeldAsSource: () => Promise.resolve(false),

  readSnapshot(knex, work) {
    // A read transaction on a WAL database sees one state of the file from its first read to its end.
    return knex.transaction(work);
  },
};

/**
 * The order a table's rows were stored in: its rowid, or the primary key of a table without one
 * (the person key's tables, migration 015).
 */
function storedOrder(db: Database.Database, table: string): string {
  const listed = db.prepare('SELECT wr FROM pragma_table_list WHERE name = ?').get(table) as
    { wr: number } | undefined;
  if (listed?.wr !== 1) return 'rowid';
  const key = db
    .prepare('SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk')
    .pluck()
    .all(table) as string[];
  return key.map(q).join(', ');
}
