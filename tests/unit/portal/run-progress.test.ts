import assert from 'node:assert/strict';
import { describeRunProgress, type RunWithRejects } from '../../../server/services/connector-run-service.ts';
import type { LiveRun } from '../../../server/services/connector-run-tracker.ts';

const STARTED = '2026-03-02T08:00:00.000Z';
const COMMITTED = '2026-03-02T08:00:07.000Z';

/** A run's record as its commit leaves it: succeeded, with the load's counts. */
const committed: RunWithRejects = {
  id: 7,
  mode: 'full',
  trigger: 'manual',
  status: 'succeeded',
  phase: null,
  started_at: STARTED,
  finished_at: COMMITTED,
  rows_read: 5,
  rows_inserted: 4,
  rows_updated: 0,
  rows_deleted: 0,
  rows_rejected: 1,
  error: null,
  rejects_kept: 1,
};

const liveAt = (phase: LiveRun['phase']): LiveRun => ({
  connector: 'veh-vehicles',
  run_id: 7,
  phase,
  stats: { read: 5, inserted: 4, updated: 0, deleted: 0, rejected: 1 },
  started_at: STARTED,
  error: null,
});

/** Where a run stands as its page shows it: whether it goes on, its phase, its finish time and rows read. */
const standingOf = (run: RunWithRejects, live: LiveRun | undefined) => {
  const p = describeRunProgress('veh-vehicles', run, live);
  return { status: p.status, phase: p.phase, finished: p.finished, at: p.finished_at, read: p.read };
};

describe('A run shown on its page', () => {
  it('is not finished while this process is still running it past its commit (indexes, audit, lock)', () => {
    assert.deepEqual(standingOf(committed, liveAt('swapping')), {
      status: 'running',
      phase: 'swapping',
      finished: false,
      at: null,
      read: 5,
    });
  });

  it('is finished once this process has seen the run return, with the record saying how it ended', () => {
    assert.deepEqual(standingOf(committed, liveAt('finished')), {
      status: 'succeeded',
      phase: 'finished',
      finished: true,
      at: COMMITTED,
      read: 5,
    });
  });

  it("is told by its record alone when another process runs it: finished at the commit, else the record's phase", () => {
    assert.equal(standingOf(committed, undefined).finished, true);
    const loading = { ...committed, status: 'running', phase: 'loading', finished_at: null, rows_read: 2 };
    assert.deepEqual(standingOf(loading, undefined), {
      status: 'running',
      phase: 'loading',
      finished: false,
      at: null,
      read: 2,
    });
  });

  it('is not finished while another process that ran it still holds its lock past the commit', () => {
    const { status, finished, at } = standingOf({ ...committed, holds_lock: true }, undefined);
    assert.deepEqual({ status, finished, at }, { status: 'running', finished: false, at: null });
  });

  it('is failed when its record says so, whatever phase its load last reached', () => {
    const failed = { ...committed, status: 'failed', error: 'the source broke' };
    const { status, phase, finished } = standingOf(failed, liveAt('failed'));
    assert.deepEqual({ status, phase, finished }, { status: 'failed', phase: 'failed', finished: true });
  });
});
