import { readdir, readFile } from 'node:fs/promises';
import { readProcessStat, STAT_FIELD } from '../../warehouse/process-identity.ts';
import { waitFor } from './wait-for.ts';

/** The processes whose parent is `pid`, from each process's /proc stat line. */
export async function findChildProcesses(pid: number): Promise<number[]> {
  const entries = (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry)).map(Number);
  return entries.filter((entry) => Number(readProcessStat(entry)?.[STAT_FIELD.parent]) === pid);
}

/** A process's command line, one argument an element; empty once it has ended. */
export async function readCommandLine(pid: number): Promise<string[]> {
  const text = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
  return text.split('\0').filter((arg) => arg !== '');
}

export function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The children of `parent` that carry a connector run out (the hub's run processes). */
export async function findRunProcesses(parent: number = process.pid): Promise<number[]> {
  const found = [];
  for (const pid of await findChildProcesses(parent))
    if ((await readCommandLine(pid)).some((a) => a.endsWith('load-process-entry.mjs'))) found.push(pid);
  return found;
}

/** Resolves once the process has ended; fails after wait-for's generous wait. */
export async function waitUntilEnded(pid: number): Promise<void> {
  await waitFor(
    `process ${pid} ends`,
    () => Promise.resolve(isRunning(pid)),
    (running) => !running,
  );
}
