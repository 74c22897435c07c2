import { readFileSync, readlinkSync } from 'node:fs';

const SEPARATOR = '/';

/** Where readProcessStat's fields are: proc(5)'s fields 3 (state), 4 (parent PID) and 22 (start time in clock ticks since boot). */
export const STAT_FIELD = { state: 0, parent: 1, start: 19 } as const;

/**
 * The fields of /proc/<pid>/stat after the command name (which may hold spaces), from field 3
 * on (STAT_FIELD); null when there is no such process to read.
 */
export function readProcessStat(pid: number): string[] | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  } catch {
    return null;
  }
}

let own: string | null | undefined;

/**
 * This process named so that another process on the same machine can tell whether it still runs
 * (at most 80 characters): the machine's boot, the PID namespace (containers), the PID and the
 * start time (a PID is reused, never with the same start). Read from Linux's /proc; null
 * elsewhere, where a lock waits for its lease as before.
 */
export function ownProcessIdentity(): string | null {
  if (own === undefined) {
    try {
      const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
      const namespace = readlinkSync('/proc/self/ns/pid').replace(/\D/g, '');
      const start = readProcessStat(process.pid)?.[STAT_FIELD.start];
      own = start === undefined ? null : [boot, namespace, process.pid, start].join(SEPARATOR);
    } catch {
      own = null;
    }
  }
  return own;
}

/**
 * True only when `identity` names a process of this machine's boot and this PID namespace that
 * has ended (no such PID, another process under it, or a zombie waiting for its parent). Any
 * other process — on another machine, in another container, or unreadable — is taken as alive.
 */
export function hasProcessEnded(identity: string): boolean {
  const mine = ownProcessIdentity();
  if (mine === null) return false;
  const [boot, namespace, pid, start] = identity.split(SEPARATOR);
  const [myBoot, myNamespace] = mine.split(SEPARATOR);
  if (boot !== myBoot || namespace !== myNamespace || !/^\d+$/.test(pid ?? '')) return false;
  const now = readProcessStat(Number(pid));
  if (now !== null) return now[STAT_FIELD.start] !== start || now[STAT_FIELD.state] === 'Z';
  return !isSignalable(Number(pid));
}

/** Whether a PID exists, where /proc hides other users' processes: EPERM means it does. */
function isSignalable(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
