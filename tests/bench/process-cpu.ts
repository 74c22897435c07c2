import { readFileSync } from 'node:fs';

/** Clock ticks per second of /proc's utime and stime: USER_HZ, 100 on every Linux build Node supports. */
const TICKS_PER_SECOND = 100;

function readChildren(pid: number): number[] {
  try {
    const tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return tasks === '' ? [] : tasks.split(/\s+/).map(Number);
  } catch {
    return [];
  }
}

/** A process and its live descendants, from /proc; on other systems the process alone. */
export function listProcessTree(pid: number): number[] {
  const tree: number[] = [];
  const pending = [pid];
  while (pending.length > 0) {
    const next = pending.pop()!;
    tree.push(next);
    pending.push(...readChildren(next));
  }
  return tree;
}

function readOwnCpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold spaces; fields are counted after its closing parenthesis.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return 0;
  }
}

/**
 * CPU seconds used so far by a process and every live descendant (a hub started with workers is
 * a cluster primary and its worker processes), from /proc; null where there is no /proc. CPU
 * per request is the figure that a busy neighbour on a shared machine disturbs least: it slows
 * both servers' requests per second, not the work each request costs.
 */
export function readProcessTreeCpuSeconds(pid: number): number | null {
  if (process.platform !== 'linux') return null;
  let ticks = 0;
  for (const each of listProcessTree(pid)) ticks += readOwnCpuTicks(each);
  return ticks / TICKS_PER_SECOND;
}
