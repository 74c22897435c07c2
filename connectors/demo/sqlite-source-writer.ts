import Database from 'better-sqlite3';

export type SqlValue = string | number | null;

const ROWS_PER_TRANSACTION = 10_000;

/**
 * Writes an agency's SQLite database: prepared inserts, committed every 10 000 rows, so the
 * journal and memory stay small at any size. The file is a throw-away export, hence no
 * journal and no fsync while it is written.
 */
export class SqliteSourceWriter {
  private readonly db: Database.Database;
  private pending = 0;

  constructor(file: string, schema: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = OFF');
    this.db.pragma('synchronous = OFF');
    this.db.exec(schema);
    this.db.exec('BEGIN');
  }

  /** An insert into one table, taking the values in the order of `columns`. */
  prepareInsert(table: string, columns: readonly string[]): (values: readonly SqlValue[]) => void {
    const statement = this.db.prepare(
      `INSERT INTO ${table} (${columns.join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
    );
    return (values) => {
      statement.run(values);
      if (++this.pending >= ROWS_PER_TRANSACTION) {
        this.db.exec('COMMIT');
        this.db.exec('BEGIN');
        this.pending = 0;
      }
    };
  }

  /** Commits, then runs `finalSql` (indexes are cheaper to build once at the end). */
  close(finalSql = ''): void {
    this.db.exec('COMMIT');
    if (finalSql !== '') this.db.exec(finalSql);
    this.db.close();
  }

  abort(): void {
    if (this.db.open) this.db.close();
  }
}
