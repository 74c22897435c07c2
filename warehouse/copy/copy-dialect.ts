import type { Knex } from 'knex';

/** A value as a driver returns it: SQLite integers come as BigInt so that none loses precision. */
export type CopyValue = string | number | bigint | boolean | Date | Buffer | null;
export type CopyRow = CopyValue[];

export interface ColumnDescription {
  name: string;
  /** The declared SQL type, lower case (`varchar(255)`, `character varying`, `bigint`, ...). */
  declaredType: string;
  maxLength: number | null;
}

/** A foreign key: `table` refers to `references`. */
export interface TableReference {
  table: string;
  references: string;
}

export interface RowWriter {
  write(rows: CopyRow[]): Promise<void>;
  /** Ends the table's rows; throws if the database refused any of them. */
  close(): Promise<void>;
  abort(): Promise<void>;
}

/**
 * What a copy needs to know of each database that knex does not say: its tables, columns and
 * foreign keys, a way to read a whole table in batches without holding it in memory, the
 * fastest way to write one, and the counters (sequences) to move past the copied ids.
 */
export interface CopyDialect {
  fetchTableNames(executor: Knex | Knex.Transaction): Promise<string[]>;
  fetchColumns(executor: Knex | Knex.Transaction, table: string): Promise<ColumnDescription[]>;
  fetchReferences(executor: Knex | Knex.Transaction): Promise<TableReference[]>;
  /** Reads inside the caller's (snapshot) transaction, `batchRows` rows at a time. */
  readRows(
    trx: Knex.Transaction,
    table: string,
    columns: string[],
    batchRows: number,
  ): AsyncIterable<CopyRow[]>;
  openRowWriter(trx: Knex.Transaction, table: string, columns: string[]): Promise<RowWriter>;
  /** Moves every id counter of the tables past the largest id they now hold. */
  resetSequences(trx: Knex.Transaction, tables: string[]): Promise<string[]>;
  /** Marks the database as a copy's source until the snapshot ends. */
  holdAsSource(snapshot: Knex.Transaction): Promise<void>;
  /** Whether a copy is reading this database as its source now: maybe this very copy, by another URL. */
  isHeldAsSource(trx: Knex.Transaction): Promise<boolean>;
  /** Starts the read transaction that gives the copy one consistent snapshot of the source. */
  readSnapshot<T>(knex: Knex, work: (trx: Knex.Transaction) => Promise<T>): Promise<T>;
}

export const quoteIdentifier = (identifier: string) => `"${identifier.replace(/"/g, '""')}"`;
