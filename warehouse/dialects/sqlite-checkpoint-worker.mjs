// Passive checkpoints of a SQLite warehouse on a thread of its own (see sqlite-checkpointer.ts).
// Plain JavaScript, so the thread starts without the TypeScript loader: only better-sqlite3.
import Database from 'better-sqlite3';
import { parentPort, workerData } from 'node:worker_threads';

const { filename, intervalMs } = workerData;
let db = null;
let timer = null;
// The frames the last checkpoint found in the WAL and copied; reported when stopped.
let last = { log: 0, checkpointed: 0 };

const checkpoint = () => {
  // PASSIVE waits for no reader and no writer: it copies the frames it may and leaves the rest.
  const [result] = db.pragma('wal_checkpoint(PASSIVE)');
  last = { log: result.log, checkpointed: result.checkpointed };
};

const tick = () => {
  try {
    checkpoint();
  } catch {
    // A checkpoint that could not run now is tried again at the next tick; the load's own final
    // checkpoint copies whatever is left. Nobody needs to hear of it.
  }
  timer = setTimeout(tick, intervalMs);
};

try {
  db = new Database(filename, { fileMustExist: true });
  db.pragma('busy_timeout = 1000');
  parentPort.on('message', (message) => {
    if (message.type !== 'stop') return;
    clearTimeout(timer);
    db.close();
    parentPort.postMessage({ type: 'stopped', ...last });
    parentPort.close();
  });
  timer = setTimeout(tick, 0);
  parentPort.postMessage({ type: 'ready' });
} catch (err) {
  db?.close();
  parentPort.postMessage({ type: 'failed', message: err.message });
  parentPort.close();
}
