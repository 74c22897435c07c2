import { Worker } from 'node:worker_threads';

/**
 * The heap of a load's second thread: a range's rows (and text) are a few hundred KB, and
 * without limits V8 lets the thread's garbage grow by tens of MB before it collects.
 */
const OLD_GENERATION_MB = 48;
const YOUNG_GENERATION_MB = 4;

/**
 * Starts a load's second thread at `url`, or gives null when it cannot be started (its data
 * cannot be cloned, its entry point fails to load); `onEnd` runs when it fails or exits.
 */
export function startSecondThread(url: URL, data: unknown, onEnd: () => void): Worker | null {
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
  worker.on('error', onEnd);
  worker.on('exit', onEnd);
  return worker;
}
