import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { stopChildProcess } from '../../server/stop-child-process.ts';

export interface ChildServer {
  url: string;
  pid: number;
  stop(): Promise<void>;
}

export interface ChildServerSpec {
  name: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  /** Matches the line that announces the server; its first group is the URL. */
  ready: RegExp;
  timeoutMs: number;
}

// A child profiled with --cpu-prof writes its profile while it exits, which takes a moment.
const STOP_GRACE_MS = 30_000;

const stopChild = (child: ChildProcess) => stopChildProcess(child, STOP_GRACE_MS);

/** Spawns a node process and waits for the line that says where it listens; its stderr passes through. */
export function startChildServer(spec: ChildServerSpec): Promise<ChildServer> {
  const child = spawn(process.execPath, spec.args, { env: spec.env, stdio: ['ignore', 'pipe', 'inherit'] });
  const seen: string[] = [];
  return new Promise<ChildServer>((resolve, reject) => {
    let listening = false;
    const fail = (why: string) => {
      if (listening) return;
      void stopChild(child);
      reject(new Error(`${spec.name} ${why}; its output:\n${seen.join('\n')}`));
    };
    const timer = setTimeout(() => fail(`did not listen within ${spec.timeoutMs / 1000} s`), spec.timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(`exited (${signal ?? code}) before it listened`);
    });
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    createInterface({ input: child.stdout }).on('line', (line) => {
      seen.push(line);
      const url = spec.ready.exec(line)?.[1];
      if (url === undefined) return;
      clearTimeout(timer);
      listening = true;
      resolve({ url, pid: child.pid!, stop: () => stopChild(child) });
    });
  });
}
