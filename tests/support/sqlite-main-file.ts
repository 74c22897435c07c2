import { copyFile, rm } from 'node:fs/promises';
import Database from 'better-sqlite3';

const COPY_ATTEMPTS = 20;

/** A copy made while a checkpoint was writing into the file can hold pages of before and after. */
const isTornCopy = (err: unknown): boolean =>
  typeof err === 'object' &&
  err !== null &&
  'code' in err &&
  (err.code === 'SQLITE_CORRUPT' || err.code === 'SQLITE_NOTADB');

async function countInCopy(file: string, table: string): Promise<number> {
  const copy = `${file}.main-only-${process.hrtime.bigint()}`;
  await copyFile(file, copy);
  try {
    const db = new Database(copy, { readonly: true });
    try {
      const found = db.prepare('SELECT count(*) AS n FROM sqlite_master WHERE name = ?').get(table) as {
        n: number;
      };
      if (found.n === 0) return 0;
      return (db.prepare(`SELECT count(*) AS n FROM "${table}"`).get() as { n: number }).n;
    } finally {
      db.close();
    }
  } finally {
    await rm(copy, { force: true });
  }
}

/**
 * Rows of a table in a SQLite database file alone, read from a copy made without its WAL: what
 * has been checkpointed into the file. 0 when the table has not reached the file yet. A copy torn
 * by a checkpoint running at the same moment is made again.
 */
export async function countInMainFile(file: string, table: string): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await countInCopy(file, table);
    } catch (err) {
      if (!isTornCopy(err) || attempt >= COPY_ATTEMPTS) throw err;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  }
}
