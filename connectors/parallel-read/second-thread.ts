import { Worker } from 'node:worker_threads';

/**
 * The heap of a load's second thread: a range's rows (and text) are a few hundred KB, and
 * without limits V8 lets the thread's garbage grow by tens of MB before it collects.
 */
const OLD_GENERATION_MB = 48;
const YOUNG_GENERATION_MB = 4;

/**
 * Starts a load's second thread at `url` and wraps it (`wrap`), or gives null when it cannot be
 * started (its data cannot be cloned, its entry point fails to load); the wrapper is told
 * (`stopped`) when the thread fails or exits.
 */
export function startSecondThread<T extends { stopped(): void }>(
  url: URL,
  data: unknown,
  wrap: (worker: Worker) => T,
): T | null {
  let worker: Worker;
  try {
    worker = new Worker(url, {
      workerData: data,
      execArgv: [],
      resourceLimits: {
        maxOldGenerationSizeMb: OLD_GENERATION_MB,
        maxYoungGenerationSizeMb: YOUNG_GENERATION_MB,
      },
    });
  } catch {
    return null;
  }
  const started = wrap(worker);
  worker.on('error', () => started.stopped());
  worker.on('exit', () => started.stopped());
  return started;
}
