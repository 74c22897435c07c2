import { copyFile, rm } from 'node:fs/promises';
import Database from 'better-sqlite3';

/**
 * Rows of a table in a SQLite database file alone, read from a copy made without its WAL: what
 * has been checkpointed into the file. 0 when the table has not reached the file yet.
 */
export async function countInMainFile(file: string, table: string): Promise<number> {
  const copy = `${file}.main-only-${process.hrtime.bigint()}`;
  await copyFile(file, copy);
  const db = new Database(copy, { readonly: true });
  try {
    const found = db.prepare('SELECT count(*) AS n FROM sqlite_master WHERE name = ?').get(table) as {
      n: number;
    };
    if (found.n === 0) return 0;
    return (db.prepare(`SELECT count(*) AS n FROM "${table}"`).get() as { n: number }).n;
  } finally {
    db.close();
    await rm(copy, { force: true });
  }
}
