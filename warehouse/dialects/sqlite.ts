import type Database from 'better-sqlite3';
import type { Knex } from 'knex';
import type { WarehouseRow, WarehouseValue } from '../core/warehouse-value.ts';
import { withRawConnection } from './raw-connection.ts';
import { toRecord, type BulkTarget, type Dialect } from './dialect.ts';

const quote = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;

/** better-sqlite3 binds numbers, strings and null only. */
function bindable(row: WarehouseRow): Array<string | number | null> {
  const out = new Array<string | number | null>(row.length);
  for (let i = 0; i < row.length; i++) {
    const v = row[i];
    out[i] = typeof v === 'boolean' ? (v ? 1 : 0) : (v ?? null);
  }
  return out;
}

export const sqliteDialect: Dialect = {
  name: 'sqlite',
  maxBindings: 32766,
  maxInsertRows: 500,
  uniqueKeyDuringLoad: false,
  // A group is one synchronous write on the writer's connection (record-audit.ts): cheap enough per turn.
  auditGatherMs: 0,

  openBulkWriter(knex: Knex, target: BulkTarget) {
    const sql = `INSERT INTO ${quote(target.table)} (${target.columns.map(quote).join(', ')}) VALUES (${target.columns
      .map(() => '?')
      .join(', ')})`;
    // The same prepared statement inserts every row of a batch inside one transaction, into a
    // table without indexes (they are built once at the end): the raw bulk path of better-sqlite3.
    const writeBatch = (db: Database.Database, rows: WarehouseRow[]): number[] => {
      const statement = db.prepare(sql);
      db.transaction(() => {
        for (const row of rows) statement.run(bindable(row));
      })();
      return [];
    };
    return Promise.resolve({
      write: (rows: WarehouseRow[]) =>
        withRawConnection(knex, (db: Database.Database) => writeBatch(db, rows)),
      close: () => Promise.resolve(),
      abort: () => Promise.resolve(),
    });
  },

  async removeDuplicateKeys(knex, target) {
    const key = target.key.map(quote).join(', ');
    const removed = await knex.raw<Array<Record<string, WarehouseValue>>>(
      `DELETE FROM ${quote(target.table)} WHERE rowid NOT IN (SELECT min(rowid) FROM ${quote(target.table)} GROUP BY ${key}) RETURNING *`,
    );
    return removed.map((r) => target.columns.map((c) => r[c] ?? null));
  },

  buildUpsert(executor, target, rows) {
    const updates = target.columns.filter((c) => !target.key.includes(c));
    const insert = executor(target.table).insert(rows.map((r) => toRecord(target.columns, bindable(r))));
    return updates.length === 0
      ? insert.onConflict(target.key).ignore()
      : insert.onConflict(target.key).merge(updates);
  },

  // A SQLite write transaction already excludes every other writer.
  lockUntilCommit: () => Promise.resolve(),

  // SQLite plans these joins from the indexes alone.
  analyzeTable: () => Promise.resolve(),

  isUniqueViolation: (error) => (error as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE',
};
