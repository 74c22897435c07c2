import type { Knex } from 'knex';
import type { LoadPhase, LoadStats } from '../warehouse/load/load-types.ts';

/** A run's record is written at most this often while its phase stays the same; the portal polls every two seconds. */
export const PROGRESS_WRITE_INTERVAL_MS = 1_000;

type ProgressListener = (stats: LoadStats, phase: LoadPhase) => void;

/**
 * Keeps a run's record in step with its load: the counts so far and the phase, written on the
 * running run's row whenever the phase changes and at most once a second in between. Every hub
 * process then shows where a run stands, whichever process carries it out: a cluster's other
 * worker, a scheduled run of the primary, a run from the command line. The load does not await
 * these writes (one at a time, the latest counts next; on SQLite's one writer connection the
 * load's next statement may queue behind one, a millisecond or so a second), and a write that
 * fails is dropped: the run's summary, written when it ends, is the record. Only a row still
 * `running` is written, so a late write never undoes the summary.
 */
export function recordProgressOnRun(
  knex: Knex,
  runId: number,
  forward: ProgressListener | undefined,
  now: () => number = Date.now,
): ProgressListener {
  let pending: { stats: LoadStats; phase: LoadPhase } | null = null;
  let writing = false;
  let writtenPhase: LoadPhase | null = null;
  let writtenAt = Number.NEGATIVE_INFINITY;

  const due = () =>
    pending !== null && (pending.phase !== writtenPhase || now() - writtenAt >= PROGRESS_WRITE_INTERVAL_MS);

  const write = async () => {
    writing = true;
    try {
      while (due()) {
        const { stats, phase } = pending!;
        pending = null;
        writtenPhase = phase;
        writtenAt = now();
        await knex('hub_connector_runs').where({ id: runId, status: 'running' }).update({
          phase,
          rows_read: stats.read,
          rows_inserted: stats.inserted,
          rows_updated: stats.updated,
          rows_deleted: stats.deleted,
          rows_rejected: stats.rejected,
        });
      }
    } catch {
      // Progress is for display; the run goes on, and its summary is written when it ends.
    } finally {
      writing = false;
    }
  };

  return (stats, phase) => {
    forward?.(stats, phase);
    pending = { stats: { ...stats }, phase };
    if (!writing && due()) void write();
  };
}
