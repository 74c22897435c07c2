import type { Worker } from 'node:worker_threads';
import type { ConnectorDefinition } from '../definition.ts';
import type { NationalIdRule } from '../../warehouse/core/national-id.ts';
import type { LoadBatch, StagedCounts } from '../../warehouse/load/load-types.ts';
import { removeStageFile } from '../../warehouse/load/stage-file.ts';
import type { SqliteTableLocation } from '../sources/source.ts';
import type { RangeReaders } from './read-in-two-threads.ts';
import { foldCursor, rangeCount } from './rowid-ranges.ts';
import { startSecondThread } from './second-thread.ts';
import type { StagedRange, StageMessage, StageWorkerData } from './stage-worker.ts';
import { TwoEndedClaims } from './two-ended-claims.ts';

export interface StageThreadOptions {
  /** The second thread's entry point; a test names one that fails. */
  workerUrl?: URL;
  /** Told which thread read each range, as it is read. */
  onRange?: (thread: 'main' | 'worker') => void;
}

/**
 * A full load of a large SQLite source table into a SQLite warehouse, on two threads that each
 * read, map and write: SQLite takes one writer at a time, so the second thread writes its rows
 * and rejects into a stage file of its own, and the warehouse's writer appends them after this
 * thread's. The
 * threads take ranges of rowids from the two ends of the table (`TwoEndedClaims`) until they
 * meet: each does what it has time for, and the table gets its rows in source order (this
 * thread's stretch, then the stage's), as one thread would have written them. Only counts and
 * cursors cross between the threads: handing rows to a writer thread cost as much CPU in
 * encoding and parsing them as it saved, and the stage holds the rejects, however many.
 *
 * This thread's batches come as they are read, each with what the stage thread has written so
 * far for the run's progress (`stagedSoFar`); the last one carries the stage thread's counts and
 * its stage file (`staged`), which the writer appends. A table that cannot be read in ranges
 * by then (`openReaders` gives null) is read by `oneThread`.
 *
 * Both threads must read one state of the source: the probe, opened before either read
 * transaction, tells once the stage thread has read whether anything was committed since. If
 * so, or if that thread cannot start or fails, its stage is dropped and this thread reads the
 * ranges it had taken.
 */
export async function* loadWithStageThread(
  openReaders: () => RangeReaders | null,
  oneThread: () => AsyncIterable<LoadBatch>,
  def: ConnectorDefinition,
  rule: NationalIdRule,
  location: SqliteTableLocation,
  cursors: { records: string | null },
  run: { id: number; connector: string },
  stageFile: string,
  options: StageThreadOptions = {},
): AsyncIterable<LoadBatch> {
  // Opened here, not by the caller: a generator that never runs would never close them.
  const readers = openReaders();
  if (readers === null) {
    yield* oneThread();
    return;
  }
  const { reader, probe, plan } = readers;
  const claims = TwoEndedClaims.create(rangeCount(plan));
  let stage = StageThread.start(options.workerUrl ?? new URL('./stage-worker.cjs', import.meta.url), {
    location,
    def,
    rule,
    plan,
    claims: claims.buffer,
    run,
    stageFile,
    // The stage thread reads deleted records as this thread's reader does.
    incremental: reader.incremental,
  });
  const dropStage = async () => {
    await stage?.stop();
    stage = null;
    // The stage thread claims no more: what it took is read here.
    claims.reopenBack();
  };
  try {
    for (;;) {
      if (stage?.failed === true || stage?.readChangedSource(probe) === true) await dropStage();
      const k = claims.front();
      if (k === null) {
        if (stage === null) break;
        await stage.finished();
        if (stage.failed || stage.readChangedSource(probe)) {
          await dropStage();
          continue;
        }
        break;
      }
      const range = reader.mapRange(plan, k);
      foldCursor(cursors, range);
      options.onRange?.('main');
      yield {
        read: range.read,
        rows: range.rows,
        rejects: range.rejects,
        deletes: range.deletes,
        ...(stage === null ? {} : { stagedSoFar: stage.soFar() }),
      };
      // This thread's reads never wait on I/O: a turn of the event loop lets API requests in,
      // and the stage thread's messages.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    const staged = stage?.ranges() ?? [];
    if (stage !== null && staged.length > 0) {
      for (const range of staged) {
        foldCursor(cursors, range);
        options.onRange?.('worker');
      }
      const written = stage.soFar();
      yield {
        read: written.read,
        rows: [],
        rejects: [],
        deletes: staged.flatMap((r) => r.deletes),
        staged: { file: stageFile, rows: written.rows, rejects: written.rejects },
      };
    }
  } finally {
    await stage?.stop();
    reader.close();
    probe.close();
    removeStageFile(stageFile);
  }
}

/** The stage thread and what it has reported: the ranges it wrote, whether it finished or failed. */
class StageThread {
  private readonly staged: StagedRange[] = [];
  private readonly written: StagedCounts = { read: 0, rows: 0, rejects: 0 };
  private done = false;
  private ended = false;
  private checked = false;
  private wake: (() => void) | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (message: StageMessage) => {
      if (message.type === 'range') {
        const { type: _, ...range } = message;
        this.staged.push(range);
        this.written.read += range.read;
        this.written.rows += range.rows;
        this.written.rejects += range.rejects;
      } else if (message.type === 'done') this.done = true;
      else this.ended = true;
      this.wake?.();
    });
  }

  /** A thread, or null when it cannot be started. */
  static start(url: URL, data: StageWorkerData): StageThread | null {
    return startSecondThread(url, data, (worker) => new StageThread(worker));
  }

  /** Told by startSecondThread when the thread fails or exits. */
  stopped(): void {
    this.ended = true;
    this.wake?.();
  }

  /** Whether it stopped before saying it had written every range it took. */
  get failed(): boolean {
    return this.ended && !this.done;
  }

  /**
   * Whether the source changed between the probe's opening and this thread's first read: asked
   * once it has written a range (it reads in one transaction, so one answer holds for all).
   */
  readChangedSource(probe: { changedSinceStart(): boolean }): boolean {
    if (this.checked || this.staged.length === 0) return false;
    this.checked = true;
    return probe.changedSinceStart();
  }

  /** Resolves once it has written every range it took, or has stopped. */
  async finished(): Promise<void> {
    while (!this.done && !this.ended) await new Promise<void>((resolve) => (this.wake = resolve));
  }

  /** What it has written so far. */
  soFar(): StagedCounts {
    return { ...this.written };
  }

  /** Its ranges, in source order. */
  ranges(): StagedRange[] {
    return [...this.staged].sort((a, b) => a.k - b.k);
  }

  async stop(): Promise<void> {
    this.ended = true;
    await this.worker.terminate();
  }
}
