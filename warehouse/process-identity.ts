import { readFileSync, readlinkSync } from 'node:fs';

/**
 * A process named so that another process on the same machine can tell whether it still runs:
 * the machine's boot, the PID namespace (containers), the PID and the process's start time (a
 * PID is reused, never with the same start). Read from Linux's /proc; elsewhere there is none,
 * and a lock waits for its lease as before.
 */
interface ProcessIdentity {
  boot: string;
  namespace: string;
  pid: number;
  start: string;
}

const SEPARATOR = '/';

/** Field 22 of /proc/<pid>/stat (after the command name, which may hold spaces): start time in clock ticks since boot. */
function readStart(pid: number): { start: string; zombie: boolean } | null {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const start = fields[19];
  return start === undefined ? null : { start, zombie: fields[0] === 'Z' };
}

function readIdentity(pid: number): ProcessIdentity | null {
  try {
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    const namespace = readlinkSync('/proc/self/ns/pid').replace(/\D/g, '');
    const stat = readStart(pid);
    return stat === null ? null : { boot, namespace, pid, start: stat.start };
  } catch {
    return null;
  }
}

let own: string | null | undefined;

/** This process's identity as text (at most 80 characters), or null where the machine does not tell. */
export function ownProcessIdentity(): string | null {
  if (own === undefined) {
    const identity = readIdentity(process.pid);
    own =
      identity === null
        ? null
        : [identity.boot, identity.namespace, identity.pid, identity.start].join(SEPARATOR);
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
  const now = readStart(Number(pid));
  if (now !== null) return now.start !== start || now.zombie;
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
