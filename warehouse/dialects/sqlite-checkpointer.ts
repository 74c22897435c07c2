import { Worker } from 'node:worker_threads';

/** Often enough that the frames are copied soon after they are written, rarely enough to cost nothing when none are new. */
const LOAD_INTERVAL_MS = 50;

/** better-sqlite3 and a timer need little; without limits V8 gives the thread tens of MB it does not use. */
const WORKER_OLD_GENERATION_MB = 8;
const WORKER_YOUNG_GENERATION_MB = 2;

/** What the thread's last checkpoint found: frames in the WAL, and how many of them are in the database file. */
export interface CheckpointReport {
  log: number;
  checkpointed: number;
}

export interface BackgroundCheckpointer {
  /** Stops after the checkpoint in progress, if any; resolves with the last report (null if the thread had failed). */
  stop(): Promise<CheckpointReport | null>;
}

type Reply =
  { type: 'ready' } | ({ type: 'stopped' } & CheckpointReport) | { type: 'failed'; message: string };

/**
 * Copies a SQLite file's WAL frames into the database file from a thread of its own, by passive
 * checkpoints, which wait for no reader and no writer. A full load commits a few hundred MB of
 * frames: its rows, then its indexes and the person key. SQLite copies them at the first commit
 * past the autocheckpoint size, on the committing connection, inside the load's time (at
 * 1,000,000 persons, about 0.5 s after the rows and again after the person key). With a core
 * to spare, this thread copies them while the main thread goes on building the indexes.
 */
export async function startBackgroundCheckpoints(
  filename: string,
  intervalMs = LOAD_INTERVAL_MS,
): Promise<BackgroundCheckpointer> {
  const worker = new Worker(new URL('./sqlite-checkpoint-worker.mjs', import.meta.url), {
    // Plain JavaScript: no TypeScript loader (and no loader thread) inherited from the parent.
    execArgv: [],
    resourceLimits: {
      maxOldGenerationSizeMb: WORKER_OLD_GENERATION_MB,
      maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB,
    },
    workerData: { filename, intervalMs },
  });
  // The thread ends on its own only when it fails; then stop() has nothing to wait for.
  const ended = new Promise<CheckpointReport | null>((resolve) => {
    worker.on('message', (reply: Reply) => {
      if (reply.type === 'stopped') resolve({ log: reply.log, checkpointed: reply.checkpointed });
      if (reply.type === 'failed') resolve(null);
    });
    worker.on('error', () => resolve(null));
    worker.on('exit', () => resolve(null));
  });
  const ready = await new Promise<Reply>((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
  });
  if (ready.type === 'failed') {
    await worker.terminate();
    throw new Error(`the SQLite checkpoint thread could not open ${filename}: ${ready.message}`);
  }
  let stopping: Promise<CheckpointReport | null> | null = null;
  return {
    stop() {
      if (stopping === null) {
        worker.postMessage({ type: 'stop' });
        stopping = ended;
      }
      return stopping;
    },
  };
}
