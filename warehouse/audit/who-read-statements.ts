import type { Knex } from 'knex';

/**
 * The statements of the who-read index (who-read-index.ts), apart from running them: each takes
 * the connection or transaction it runs on and the values read back before it, and returns the
 * statement unrun, so that every dialect's SQL can be compiled and checked on its own (SQL
 * Server cannot run in the tests).
 */
export const WHO_READ_TABLE = 'hub_audit_who_read';
export const WHO_READ_RUNS = 'hub_audit_who_read_runs';
const SUBJECTS = 'hub_audit_subjects';

type Executor = Knex | Knex.Transaction;

export interface RunRow {
  run: number | string;
  level: number;
  first_audit_id: number | string;
  last_audit_id: number | string;
  row_count: number | string;
  state: 'live' | 'building';
  touched_at: string;
}

/** A condition on the rows to copy, with its bindings: SQL text of ours, never a caller's value. */
export interface RowRange {
  where: string;
  bindings: Knex.Value[];
}

type Aggregate = Array<{ result: number | string | null }>;
type Counted = Array<{ n: number | string }>;

/** The last event whose subject rows are in a run. */
export const selectIndexedUpTo = (db: Executor) =>
  db(WHO_READ_RUNS).max<Aggregate>({ result: 'last_audit_id' });

/** The subject row `rows` rows into the tail after `after`: a new run ends at its event. */
export const selectTailEdge = (db: Executor, after: number, rows: number) =>
  db(SUBJECTS)
    .where('audit_id', '>', after)
    .orderBy('audit_id')
    .offset(rows - 1)
    .first<{ audit_id: number | string } | undefined>('audit_id');

/** The last event in the tail after `after`, for a run that takes the whole tail. */
export const selectTailEnd = (db: Executor, after: number) =>
  db(SUBJECTS).where('audit_id', '>', after).max<Aggregate>({ result: 'audit_id' });

/** The highest run listed, and the highest with rows stored: a new run's id is above both. */
export const selectHighestListedRun = (db: Executor) => db(WHO_READ_RUNS).max<Aggregate>({ result: 'run' });
export const selectHighestStoredRun = (db: Executor) => db(WHO_READ_TABLE).max<Aggregate>({ result: 'run' });

/** The subject rows of new events, or a merge's range of its sources' rows, into `run` in national-ID order. */
export const copySortedRows = (db: Executor, run: number, from: string, range: RowRange) =>
  db.raw(
    `INSERT INTO ?? (run, national_id, audit_id) SELECT CAST(? AS bigint), national_id, audit_id FROM ?? WHERE ${range.where} ORDER BY national_id, audit_id`,
    [WHO_READ_TABLE, run, from, ...range.bindings],
  );

/** The subject rows of the events after `after` up to `last`. */
export const eventsBetween = (after: number, last: number): RowRange => ({
  where: 'audit_id > ? AND audit_id <= ?',
  bindings: [after, last],
});

/** The rows of the runs `runs` whose national ID is above `lower` and up to `upper` (either open). */
export function runsBetween(runs: readonly number[], lower: string | null, upper: string | null): RowRange {
  const where = [`run IN (${runs.map(() => '?').join(', ')})`];
  const bindings: Knex.Value[] = [...runs];
  if (lower !== null) {
    where.push('national_id > ?');
    bindings.push(lower);
  }
  if (upper !== null) {
    where.push('national_id <= ?');
    bindings.push(upper);
  }
  return { where: where.join(' AND '), bindings };
}

export const countRunRows = (db: Executor, run: number) =>
  db(WHO_READ_TABLE).where({ run }).count<Counted>({ n: '*' });

export const listRun = (db: Executor, listing: RunRow) => db(WHO_READ_RUNS).insert(listing);

export const selectLiveRuns = (db: Executor) =>
  db(WHO_READ_RUNS).where({ state: 'live' }).orderBy('run').select<RunRow[]>('*');

export const touchRun = (db: Executor, run: number, at: string) =>
  db(WHO_READ_RUNS).where({ run }).update({ touched_at: at });

/** The national ID `step` rows after `lower` in a run: the inclusive upper bound of the next range. */
export function selectBoundary(db: Executor, run: number, lower: string | null, step: number) {
  const query = db(WHO_READ_TABLE).where({ run });
  if (lower !== null) void query.andWhere('national_id', '>', lower);
  return query
    .orderBy('national_id')
    .offset(step - 1)
    .first<{ national_id: string } | undefined>('national_id');
}

/** Which of `runs` are still live, and whether `run` is still being built: a merge switches only if all are. */
export const selectStillLive = (db: Executor, runs: readonly number[]) =>
  db(WHO_READ_RUNS).whereIn('run', runs).andWhere({ state: 'live' }).pluck('run');
export const selectBuilding = (db: Executor, run: number) =>
  db(WHO_READ_RUNS).where({ run, state: 'building' }).pluck('run');

export const unlistRuns = (db: Executor, runs: readonly number[]) =>
  db(WHO_READ_RUNS).whereIn('run', runs).delete();

export const makeRunLive = (db: Executor, run: number, at: string) =>
  db(WHO_READ_RUNS).where({ run }).update({ state: 'live', touched_at: at });

const abandonedMerges = (db: Executor, before: string) =>
  db(WHO_READ_RUNS).where({ state: 'building' }).andWhere('touched_at', '<', before);

/** Merges left unfinished since `before`: given up, their rows dropped with the dead runs'. */
export const unlistAbandonedMerges = (db: Executor, before: string) => abandonedMerges(db, before).delete();

/** Whether any merge was left unfinished since `before`, asked without the lock. */
export const selectAbandonedMerge = (db: Executor, before: string) =>
  abandonedMerges(db, before).first<{ run: number | string } | undefined>('run');

/** Every run listed, live or being built: a stored run not among them is dead. */
export const selectListedRuns = (db: Executor) => db(WHO_READ_RUNS).pluck<Array<number | string>>('run');

export const selectListing = (db: Executor, run: number) =>
  db(WHO_READ_RUNS).where({ run }).first<{ run: number | string } | undefined>('run');

/** A dead run's rows up to `upper` (all of them when null). */
export function deleteRunRows(db: Executor, run: number, upper: string | null) {
  const query = db(WHO_READ_TABLE).where({ run });
  if (upper !== null) void query.andWhere('national_id', '<=', upper);
  return query.delete();
}

/** The lowest run with rows stored above `after`: a seek, not a read of its rows. */
export const selectNextStoredRun = (db: Executor, after: number) =>
  db(WHO_READ_TABLE).where('run', '>', after).min<Aggregate>({ result: 'run' });

export const selectLiveRunsInLogOrder = (db: Executor) =>
  db(WHO_READ_RUNS).where({ state: 'live' }).orderBy('first_audit_id').select<RunRow[]>('*');

/** The subject rows of the events `first`..`last` in the log. */
export const countLoggedRows = (db: Executor, first: number, last: number) =>
  db(SUBJECTS).whereBetween('audit_id', [first, last]).count<Counted>({ n: '*' });

/** The subject rows of the events `first`..`last` that run `run` lacks. */
export const countRowsMissingFromRun = (db: Knex, run: number, first: number, last: number) =>
  db(`${SUBJECTS} as s`)
    .whereBetween('s.audit_id', [first, last])
    .whereNotExists(
      db(`${WHO_READ_TABLE} as w`)
        .select(db.raw('1'))
        .where('w.run', run)
        .whereRaw('w.national_id = s.national_id')
        .whereRaw('w.audit_id = s.audit_id'),
    )
    .count<Counted>({ n: '*' });

/** A one-row aggregate (max, min) as a number; null when it had no rows to aggregate. */
export function readAggregate(rows: Aggregate): number | null {
  const result = rows[0]?.result;
  return result == null ? null : Number(result);
}
