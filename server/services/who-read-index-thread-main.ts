import { parentPort, workerData } from 'node:worker_threads';
import { closeWarehouse, openWarehouse } from '../../warehouse/db.ts';
import type { WhoReadThreadData, WhoReadThreadMessage } from './who-read-index-thread.ts';
import { startWhoReadIndexing } from './who-read-indexing.ts';

// The thread's side: its own connection to the warehouse, the same passes as on the main
// thread, and every message to the hub through the port.
const port = parentPort!;
const data = workerData as WhoReadThreadData;
const send = (message: WhoReadThreadMessage) => port.postMessage(message);
const describe = (err: unknown) => (err instanceof Error ? (err.stack ?? err.message) : String(err));

try {
  const warehouse = openWarehouse(data.databaseUrl, {
    log: (message) => send({ type: 'driver', message }),
  });
  // Opened now, so that a warehouse the thread cannot reach fails the start, not every pass.
  await warehouse.knex.raw('SELECT 1');
  const indexing = startWhoReadIndexing(
    warehouse.knex,
    {
      merged: (report) => send({ type: 'merged', report }),
      failed: (err) => send({ type: 'pass-failed', message: describe(err) }),
    },
    { intervalMs: data.intervalMs, index: data.index },
  );
  port.once('message', () => {
    void (async () => {
      await indexing.stop();
      await closeWarehouse(warehouse);
      send({ type: 'stopped' });
      port.close();
    })();
  });
  send({ type: 'ready' });
} catch (err) {
  send({ type: 'failed', message: describe(err) });
  port.close();
}
