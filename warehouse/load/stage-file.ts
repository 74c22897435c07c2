/**
 * A stage file: rows of a full load written by a second thread into a SQLite file of their own,
 * which the warehouse's writer then appends to the table (SQLite takes one writer at a time).
 * Its one table holds the target's columns in order, untyped, so the target's types apply when
 * the rows are appended; rowids give the rows' order.
 */
export const STAGE_TABLE = 'staged_rows';

export const stageColumn = (i: number) => `c${i}`;
