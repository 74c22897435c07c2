import os from 'node:os';

/** Cumulative CPU times of each core, as `os.cpus()` gives them. */
export type CoreTimes = ReadonlyArray<{ times: os.CpuInfo['times'] }>;

/** A window shorter than this says too little (the kernel counts CPU time in 10 ms ticks). */
const SHORTEST_WINDOW_MS = 200;

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

let lastLook = { at: Date.now(), cores: os.cpus() as CoreTimes };

/**
 * Whether a core is free for a second thread of this process now. The one-minute load average
 * alone answers late: it still counts, for a minute, a process that ended seconds ago (the raw
 * load a benchmark runs just before the hub's, or the previous connector of a schedule). The CPU
 * times since the last look (at the latest, since this module was loaded: the process's own
 * start) answer for that window, this process's own work included; a window too short for them
 * falls back to the load average.
 */
export function hasIdleCore(): boolean {
  const cores = os.availableParallelism();
  if (cores < 2) return false;
  const now = { at: Date.now(), cores: os.cpus() as CoreTimes };
  const previous = lastLook;
  lastLook = now;
  const idle = now.at - previous.at >= SHORTEST_WINDOW_MS ? countIdleCores(previous.cores, now.cores) : null;
  if (idle === null) return os.loadavg()[0]! + 1 <= cores;
  return idle >= 0.75;
}
