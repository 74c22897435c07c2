import { stringify } from 'csv-stringify/sync';
import type { Actor } from '../../privileges/actor.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import { connectorLockName } from '../../connectors/run-connector.ts';
import { findLockTakenAt } from '../../warehouse/lock.ts';
import type { AppContext } from '../context.ts';
import {
  fetchRunHistory,
  RUN_HISTORY_COLUMNS,
  type ConnectorOverview,
  type RunHistoryRow,
} from './connector-service.ts';
import { LOAD_PHASES, type LoadPhase } from '../../warehouse/load/load-types.ts';
import type { LiveRun, RunPhase } from './connector-run-tracker.ts';
import { assertMayRunConnector } from './portal-admin-service.ts';

/*
 * One connector run as the portal shows it: its record in the run history, its progress while
 * it runs, and the rows it rejected. Every function checks first that the actor may see the
 * connector (a super admin every one, a custodian its own entity's), as the connector screens do.
 */

export interface RunWithRejects extends RunHistoryRow {
  /** Where a running run stands, as its load last wrote it (connectors/run-progress.ts); read for one run's page. */
  phase?: string | null;
  /** Rejected rows kept for this run (a failed full load keeps those it met before failing). */
  rejects_kept: number;
  /** A run whose record has ended but which still holds its connector's lock; read for one run's page. */
  holds_lock?: boolean;
}

export interface RunProgress {
  run_id: number;
  connector: string;
  status: string;
  /** Where the run stands: its load's phase, from this process's own run or from the run's record. */
  phase: RunPhase | 'running';
  finished: boolean;
  /** Counts from the load while this process runs it, otherwise from the run's record. */
  read: number;
  inserted: number;
  updated: number;
  deleted: number;
  rejected: number;
  started_at: string;
  finished_at: string | null;
  error: string | null;
}

const REJECTS_SHOWN = 200;
const RUN_ID = /^[1-9][0-9]{0,14}$/;

const unknownRun = (name: string, runId: string) =>
  new HubError('unknown_run', 404, `connector ${name} has no run ${JSON.stringify(runId)}`);

async function countKeptRejects(
  ctx: AppContext,
  name: string,
  runIds: number[],
): Promise<Map<number, number>> {
  if (runIds.length === 0) return new Map();
  const rows = await ctx
    .knex('hub_rejects')
    .where('connector', name)
    .whereIn('run_id', runIds)
    .groupBy('run_id')
    .select<Array<{ run_id: number | string; n: number | string }>>('run_id', ctx.knex.raw('count(*) as n'));
  return new Map(rows.map((r) => [Number(r.run_id), Number(r.n)]));
}

const withKept = (run: RunHistoryRow, kept: Map<number, number>): RunWithRejects => ({
  ...run,
  id: Number(run.id),
  rows_read: Number(run.rows_read),
  rows_inserted: Number(run.rows_inserted),
  rows_updated: Number(run.rows_updated),
  rows_deleted: Number(run.rows_deleted),
  rows_rejected: Number(run.rows_rejected),
  rejects_kept: kept.get(Number(run.id)) ?? 0,
});

/** The connector and its latest runs, newest first, each with the number of rejected rows kept for it. */
export async function fetchConnectorRuns(
  ctx: AppContext,
  actor: Actor,
  name: string,
  limit = 50,
): Promise<{ connector: ConnectorOverview; runs: RunWithRejects[] }> {
  const connector = await assertMayRunConnector(ctx, actor, name);
  const runs = await fetchRunHistory(ctx, name, limit);
  const kept = await countKeptRejects(
    ctx,
    name,
    runs.map((r) => Number(r.id)),
  );
  return { connector, runs: runs.map((r) => withKept(r, kept)) };
}

/** One run of the connector; an id that is not one of its runs is a 404, as an unknown connector is. */
export async function fetchConnectorRun(
  ctx: AppContext,
  actor: Actor,
  name: string,
  runId: string,
): Promise<{ connector: ConnectorOverview; run: RunWithRejects }> {
  const connector = await assertMayRunConnector(ctx, actor, name);
  if (!RUN_ID.test(runId)) throw unknownRun(name, runId);
  const run = await ctx
    .knex('hub_connector_runs')
    .where({ id: Number(runId), connector: name })
    .first<(RunHistoryRow & { phase: string | null }) | undefined>(...RUN_HISTORY_COLUMNS, 'phase');
  if (run === undefined) throw unknownRun(name, runId);
  return {
    connector,
    run: {
      ...withKept(run, await countKeptRejects(ctx, name, [Number(runId)])),
      holds_lock: run.status !== 'running' && (await holdsLockStill(ctx, name, run)),
    },
  };
}

/** Whether the connector's lock is still the one this run took: taken no later than the run started. */
async function holdsLockStill(ctx: AppContext, name: string, run: RunHistoryRow): Promise<boolean> {
  const takenAt = await findLockTakenAt(ctx.knex, connectorLockName(name), ctx.clock);
  return takenAt !== null && takenAt <= run.started_at;
}

const RECORDED_PHASES: ReadonlySet<string> = new Set(LOAD_PHASES);

/** A running run's phase as its record holds it; `running` where none is (a run of a hub before the column). */
const recordedPhase = (phase: string | null | undefined): LoadPhase | 'running' =>
  phase != null && RECORDED_PHASES.has(phase) ? (phase as LoadPhase) : 'running';

/**
 * The run history says whether a run has ended and with which counts. While it runs, the live
 * state of the process running it (if that is this one) says how far it got, and otherwise its
 * record, which the process running it keeps up to date about once a second. A run's record says
 * it ended at its commit, before the run has built its declared indexes, written its audit event
 * and released its lock: it is shown running until it has returned (where this process runs it)
 * or released its lock (elsewhere), so that the page never says finished while Run now would
 * still be refused.
 */
export function describeRunProgress(
  connector: string,
  run: RunWithRejects,
  live: LiveRun | undefined,
): RunProgress {
  const liveGoesOn = live !== undefined && live.phase !== 'finished' && live.phase !== 'failed';
  const running = run.status === 'running' || liveGoesOn || run.holds_lock === true;
  const fromLoad = running && live !== undefined;
  return {
    run_id: run.id,
    connector,
    status: running ? 'running' : run.status,
    phase: !running
      ? run.status === 'succeeded'
        ? 'finished'
        : 'failed'
      : (live?.phase ?? recordedPhase(run.phase)),
    finished: !running,
    read: fromLoad ? live.stats.read : run.rows_read,
    inserted: fromLoad ? live.stats.inserted : run.rows_inserted,
    updated: fromLoad ? live.stats.updated : run.rows_updated,
    deleted: fromLoad ? live.stats.deleted : run.rows_deleted,
    rejected: fromLoad ? live.stats.rejected : run.rows_rejected,
    started_at: run.started_at,
    finished_at: running ? null : run.finished_at,
    error: run.error,
  };
}

export interface RejectRow {
  source_key: string;
  reason: string;
  raw_row: string;
}

function selectRejects(ctx: AppContext, name: string, runId: number) {
  return ctx
    .knex('hub_rejects')
    .where({ connector: name, run_id: runId })
    .orderBy('id')
    .select<RejectRow[]>('source_key', 'reason', 'raw_row');
}

/** The first rows the run rejected, in the order it met them, with their reasons. */
export async function fetchRunRejects(ctx: AppContext, name: string, runId: number): Promise<RejectRow[]> {
  return selectRejects(ctx, name, runId).limit(REJECTS_SHOWN);
}

/** Every row one run rejected, as CSV: run, source key, reason, the row as read. */
export async function exportRunRejectsCsv(
  ctx: AppContext,
  actor: Actor,
  name: string,
  runId: string,
): Promise<string> {
  const { run } = await fetchConnectorRun(ctx, actor, name, runId);
  const rows = await selectRejects(ctx, name, run.id);
  return stringify(
    rows.map((r) => [run.id, r.source_key, r.reason, r.raw_row]),
    { header: true, columns: ['run_id', 'source_key', 'reason', 'raw_row'] },
  );
}
