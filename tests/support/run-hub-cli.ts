import { spawn, type ChildProcess, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import path from 'node:path';
import { PROJECT_ROOT } from './project-root.ts';

const HUB = path.join(PROJECT_ROOT, 'server/cli/hub.mjs');

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Starts `hub <args>` as its own process, its output piped, as a script would. */
export function spawnHubCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
): ChildProcessByStdio<null, Readable, Readable> {
  return spawn(process.execPath, [HUB, ...args], {
    env: { ...process.env, LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Runs `hub <args>` as its own process, as a user or a script would. */
export function runHubCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnHubCli(args, env);
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A `hub start` left running: its URL, its log lines (JSON, from stderr) and its process. */
export interface RunningHubCli {
  url: string;
  child: ChildProcess;
  stdout: () => string;
  /** The JSON log lines written so far. */
  log: () => Array<Record<string, unknown>>;
  /** Resolves with the first log line (past or future) that matches, or rejects after `timeoutMs`. */
  waitForLog(
    match: (line: Record<string, unknown>) => boolean,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Sends the signal and resolves with the exit code (or the signal that ended it). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Starts `hub <args>` (a `start` command) as its own process and resolves once it says where it listens. */
export function startHubCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  timeoutMs = 120_000,
): Promise<RunningHubCli> {
  const child = spawn(process.execPath, [HUB, ...args], {
    env: { ...process.env, LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  const lines: Array<Record<string, unknown>> = [];
  const waiters = new Set<() => void>();
  let partial = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    const parts = (partial + d).split('\n');
    partial = parts.pop()!;
    for (const part of parts) {
      try {
        lines.push(JSON.parse(part) as Record<string, unknown>);
      } catch {
        lines.push({ msg: part });
      }
    }
    for (const wake of waiters) wake();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once('exit', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  const waitForLog: RunningHubCli['waitForLog'] = (match, wait = 60_000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = lines.find(match);
        if (found === undefined) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(
          new Error(
            `no such log line within ${wait} ms; the log:\n${lines.map((l) => JSON.stringify(l)).join('\n')}`,
          ),
        );
      }, wait);
      waiters.add(check);
      check();
    });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`hub start did not listen within ${timeoutMs} ms:\n${stdout}`));
    }, timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(
        new Error(`hub start exited (${code}) before it listened:\n${stdout}\n${JSON.stringify(lines)}`),
      );
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      const url = /Registry Hub listening on (http:\/\/\S+)/.exec(stdout)?.[1];
      if (url === undefined) return;
      clearTimeout(timer);
      resolve({
        url,
        child,
        stdout: () => stdout,
        log: () => lines,
        waitForLog,
        stop(signal = 'SIGTERM') {
          if (child.exitCode === null && child.signalCode === null) child.kill(signal);
          return exited;
        },
      });
    });
  });
}
