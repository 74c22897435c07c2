import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { listProcessTree } from './process-cpu.ts';

const INSTRUMENT = path.join(import.meta.dirname, 'event-loop-delay.mjs');
const ANSWER_WAIT_MS = 5_000;

export interface EventLoopDelay {
  p99: number;
  max: number;
}

const readCmdline = (pid: number): string => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return '';
  }
};

/**
 * How long a benchmarked server's serving threads were kept from their event loop during a run
 * (event-loop-delay.mjs, loaded into each of its processes): what every request in flight
 * waited, beyond its own work, while a step of deferred work or a garbage collection ran.
 */
export class EventLoopProbe {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'hub-bench-event-loop-'));

  /** Node options that load the instrument; the environment variable tells it where to write. */
  get args(): string[] {
    return ['--import', INSTRUMENT];
  }

  get env(): NodeJS.ProcessEnv {
    return { BENCH_EVENT_LOOP_DIR: this.dir };
  }

  /**
   * Ends the window since the last mark in every serving process of the tree and begins a new
   * one; returns the worst p99 and maximum among them. A cluster's primary serves nothing and is
   * left out when it has workers.
   */
  async mark(rootPid: number): Promise<EventLoopDelay> {
    const instrumented = listProcessTree(rootPid).filter((pid) => readCmdline(pid).includes(INSTRUMENT));
    const serving = instrumented.length > 1 ? instrumented.filter((pid) => pid !== rootPid) : instrumented;
    const files = serving.map((pid) => path.join(this.dir, `${pid}.json`));
    for (const file of files) rmSync(file, { force: true });
    for (const pid of serving) process.kill(pid, 'SIGUSR2');
    const deadline = Date.now() + ANSWER_WAIT_MS;
    while (!files.every((file) => existsSync(file))) {
      if (Date.now() > deadline) throw new Error('a benchmarked process did not report its event-loop delay');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const reports = files.map((file) => JSON.parse(readFileSync(file, 'utf8')) as EventLoopDelay);
    return {
      p99: Math.max(...reports.map((r) => r.p99)),
      max: Math.max(...reports.map((r) => r.max)),
    };
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
