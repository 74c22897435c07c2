import type Database from 'better-sqlite3';
import type { Knex } from 'knex';
import type { WarehouseRow } from '../core/warehouse-value.ts';
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
  uniqueKeyDuringLoad: true,

  openBulkWriter(knex: Knex, target: BulkTarget) {
    const sql = `INSERT OR IGNORE INTO ${quote(target.table)} (${target.columns.map(quote).join(', ')}) VALUES (${target.columns
      .map(() => '?')
      .join(', ')})`;
    // The same prepared statement inserts every row of a batch inside one transaction: this is
    // exactly the raw bulk path of better-sqlite3, so the load runs near its speed.
    const writeBatch = (db: Database.Database, rows: WarehouseRow[]) => {
      const statement = db.prepare(sql);
      const dropped: number[] = [];
      db.transaction(() => {
        for (let i = 0; i < rows.length; i++) {
          if (statement.run(bindable(rows[i]!)).changes === 0) dropped.push(i);
        }
      })();
      return dropped;
    };
    return Promise.resolve({
      write: (rows: WarehouseRow[]) => withRawConnection(knex, (db: Database.Database) => writeBatch(db, rows)),
      close: () => Promise.resolve(),
      abort: () => Promise.resolve(),
    });
  },

  removeDuplicateKeys: () => Promise.resolve([]),

  buildUpsert(executor, target, rows) {
    const updates = target.columns.filter((c) => !target.key.includes(c));
    const insert = executor(target.table).insert(rows.map((r) => toRecord(target.columns, bindable(r))));
    return updates.length === 0 ? insert.onConflict(target.key).ignore() : insert.onConflict(target.key).merge(updates);
  },

  isUniqueViolation: (error) => (error as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE',
};
