import { rmSync } from 'node:fs';

/**
 * A stage file: rows of a full load written by a second thread into a SQLite file of their own,
 * which the warehouse's writer then appends to the table (SQLite takes one writer at a time).
 * One table holds the target's columns in order, untyped, so the target's types apply when the
 * rows are appended; the other, the rejects' columns of hub_rejects after the run's own
 * (connector, run). In both, rowids give the order.
 */
export const STAGE_TABLE = 'staged_rows';
export const STAGE_REJECTS = 'staged_rejects';

export const stageColumn = (i: number) => `c${i}`;

/** The columns of hub_rejects a stage file holds (REJECT_COLUMNS without connector and run). */
export const STAGED_REJECT_COLUMNS = ['source_key', 'reason', 'raw_row'] as const;

/** Removes a stage file and the journal SQLite may have left beside it; a missing one is fine. */
export function removeStageFile(stageFile: string): void {
  for (const suffix of ['', '-journal']) rmSync(stageFile + suffix, { force: true });
}
