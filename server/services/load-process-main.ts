// The process one connector run is carried out in (load-process.ts): it takes the hub's
// configuration and the run from the hub's first message, reports the run's start, progress and
// summary (or the error that stopped it), closes the warehouse and ends. A hub that goes away
// mid-run leaves the run to finish here: its data and history are whole either way.
import { closeContext, openContext, type AppContext } from '../context.ts';
import { runConnectorByName } from './connector-service.ts';
import { describeRunError, type FromLoadProcess, type ToLoadProcess } from './load-process.ts';

/** Resolves once the message is handed to the hub, or at once when the hub has gone. */
const report = (message: FromLoadProcess): Promise<void> =>
  new Promise((resolve) => {
    if (!process.connected) resolve();
    else process.send!(message, undefined, undefined, () => resolve());
  });

async function carryOut({ config, name, options }: ToLoadProcess): Promise<void> {
  let ctx: AppContext | null = null;
  try {
    ctx = openContext(config);
    const summary = await runConnectorByName(ctx, name, {
      ...options,
      onStart: (run) => void report({ type: 'started', run }),
      onProgress: (stats, phase) => void report({ type: 'progress', stats, phase }),
    });
    await report({ type: 'finished', summary });
  } catch (err) {
    await report({ type: 'failed', error: describeRunError(err) });
  } finally {
    if (ctx !== null) await closeContext(ctx).catch(() => undefined);
    if (process.connected) process.disconnect();
  }
}

process.once('message', (message: ToLoadProcess) => void carryOut(message));
