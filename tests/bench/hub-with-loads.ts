/**
 * The hub as `hub start` runs it, plus the connector runs its scheduler would start, on demand:
 * a line `run <connector> full|incremental` on stdin runs that connector as the scheduler does
 * (through the hub's runner, in a process of its own) and answers `run-done <summary JSON>`.
 * For the API benchmark's lookups during a load.
 * Usage: node --import tsx tests/bench/hub-with-loads.ts DATA_DIR
 */
import { createInterface } from 'node:readline';
import { readConfig } from '../../server/config.ts';
import { startHub } from '../../server/main.ts';

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: hub-with-loads.ts DATA_DIR');
const config = readConfig({ ...process.env, HUB_DATA_DIR: dir, HUB_SCHEDULER: 'off' }, { port: 0 });
const hub = await startHub(config, (line) => console.log(line));

createInterface({ input: process.stdin }).on('line', (line) => {
  const [command, connector, mode] = line.trim().split(/\s+/);
  if (command !== 'run' || connector === undefined) return;
  hub.ctx.connectorRuns
    .run(connector, { full: mode === 'full', trigger: 'schedule' })
    .then((summary) => console.log(`run-done ${JSON.stringify(summary)}`))
    .catch((err: unknown) =>
      console.log(`run-done ${JSON.stringify({ status: 'failed', error: String(err) })}`),
    );
});

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    void hub.stop().finally(() => process.exit(0));
  });
}
