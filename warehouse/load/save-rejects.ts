import type { Knex } from 'knex';
import type { RejectInput } from './load-types.ts';

const MAX_REASON = 1000;
const MAX_KEY = 400;
/** Rejects one INSERT statement carries. */
export const REJECT_ROWS_PER_INSERT = 200;

/** A row of hub_rejects, in its column order: connector, run_id, source_key, reason, raw_row. */
export type RejectRow = [string, number, string, string, string];

export const REJECT_COLUMNS = ['connector', 'run_id', 'source_key', 'reason', 'raw_row'] as const;

export function buildRejectRows(run: { id: number; connector: string }, rejects: RejectInput[]): RejectRow[] {
  return rejects.map((r) => [
    run.connector,
    run.id,
    r.sourceKey.slice(0, MAX_KEY),
    r.reason.slice(0, MAX_REASON),
    JSON.stringify(r.raw) ?? 'null',
  ]);
}

export async function insertRejectRows(executor: Knex | Knex.Transaction, rows: RejectRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += REJECT_ROWS_PER_INSERT) {
    await executor('hub_rejects').insert(
      rows
        .slice(i, i + REJECT_ROWS_PER_INSERT)
        .map((row) => Object.fromEntries(REJECT_COLUMNS.map((column, c) => [column, row[c]]))),
    );
  }
}

/** A bad source row is data, not an exception: it is kept with its reason and the load goes on. */
export async function saveRejects(
  executor: Knex | Knex.Transaction,
  run: { id: number; connector: string },
  rejects: RejectInput[],
): Promise<void> {
  await insertRejectRows(executor, buildRejectRows(run, rejects));
}
