import type { Knex } from 'knex';
import type { RejectInput } from './load-types.ts';

const MAX_REASON = 1000;
const MAX_KEY = 400;

/** A bad source row is data, not an exception: it is kept with its reason and the load goes on. */
export async function saveRejects(
  executor: Knex | Knex.Transaction,
  run: { id: number; connector: string },
  rejects: RejectInput[],
): Promise<void> {
  const chunk = 200;
  for (let i = 0; i < rejects.length; i += chunk) {
    await executor('hub_rejects').insert(
      rejects.slice(i, i + chunk).map((r) => ({
        connector: run.connector,
        run_id: run.id,
        source_key: r.sourceKey.slice(0, MAX_KEY),
        reason: r.reason.slice(0, MAX_REASON),
        raw_row: JSON.stringify(r.raw) ?? 'null',
      })),
    );
  }
}
