import { spawn } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { PROJECT_ROOT } from './project-root.ts';

/** A warehouse lock held by a process of its own, which a test can kill. */
export interface LockHolderProcess {
  pid: number;
  kill(signal: NodeJS.Signals): Promise<void>;
}

const HOLD = (url: string, name: string) => `
import { openWarehouse } from ${JSON.stringify(pathToFileURL(path.join(PROJECT_ROOT, 'warehouse/db.ts')).href)};
import { acquireLock } from ${JSON.stringify(pathToFileURL(path.join(PROJECT_ROOT, 'warehouse/lock.ts')).href)};
const warehouse = openWarehouse(${JSON.stringify(url)});
await acquireLock(warehouse.knex, ${JSON.stringify(name)}, { clock: { now: () => new Date() } });
process.stdout.write('held\\n');
setInterval(() => undefined, 60_000);
`;

/** Starts a node process that takes the lock `name` on the warehouse at `url` and holds it until killed. */
export async function holdLockInAnotherProcess(url: string, name: string): Promise<LockHolderProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', HOLD(url, name)], {
    cwd: PROJECT_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = once(child, 'exit');
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('held')) resolve();
    });
    void exited.then(() => reject(new Error(`the lock holder exited before it held the lock:\n${out}`)));
  });
  return {
    pid: child.pid!,
    async kill(signal) {
      child.kill(signal);
      await exited;
    },
  };
}
