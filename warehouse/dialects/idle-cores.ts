import os from 'node:os';

/** Cumulative CPU times of each core, as `os.cpus()` gives them. */
export type CoreTimes = ReadonlyArray<{ times: os.CpuInfo['times'] }>;

/** A window shorter than this says too little (the kernel counts CPU time in 10 ms ticks). */
const SHORTEST_WINDOW_MS = 100;
/** A window longer than this says more about the past than the load average does. */
const LONGEST_WINDOW_MS = 60_000;

/** How many cores, on average, sat idle between two looks at the CPU times; null if they do not compare. */
export function countIdleCores(before: CoreTimes, after: CoreTimes): number | null {
  if (before.length === 0 || before.length !== after.length) return null;
  const busy = (t: os.CpuInfo['times']) => t.user + t.nice + t.sys + t.irq;
  let idle = 0;
  let total = 0;
  after.forEach((core, i) => {
    const earlier = before[i]!.times;
    idle += core.times.idle - earlier.idle;
    total += busy(core.times) - busy(earlier) + core.times.idle - earlier.idle;
  });
  return total <= 0 ? null : (idle / total) * after.length;
}

interface Look {
  at: number;
  cores: CoreTimes;
  /** This process's CPU time so far (all its threads), in microseconds. */
  ownCpu: number;
}

const look = (): Look => {
  const own = process.cpuUsage();
  return { at: Date.now(), cores: os.cpus(), ownCpu: own.user + own.system };
};

let lastLook = look();

/**
 * Whether two cores are free for this process, one for its main thread and one for a second
 * thread, now. The one-minute load average alone answers late, and counts this process too: it
 * still counts, for a minute, a process that ended seconds ago (the raw load a benchmark runs
 * just before the hub's) or this process's own previous load. Here the cores count as free when
 * they were idle or working for this process since the last look (at the latest, since this
 * module was loaded: the process's own start). A window under 100 ms is too short to tell, and
 * one over a minute (a server's scheduled load, hours after the last) too long: both fall back
 * to the load average.
 */
export function hasIdleCore(): boolean {
  const cores = os.availableParallelism();
  if (cores < 2) return false;
  const now = look();
  const previous = lastLook;
  lastLook = now;
  const window = now.at - previous.at;
  const idle =
    window >= SHORTEST_WINDOW_MS && window <= LONGEST_WINDOW_MS
      ? countIdleCores(previous.cores, now.cores)
      : null;
  if (idle === null) return os.loadavg()[0]! + 1 <= cores;
  const own = (now.ownCpu - previous.ownCpu) / 1000 / window;
  return idle + own >= 1.75;
}
