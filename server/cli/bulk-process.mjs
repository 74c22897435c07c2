// Plain JavaScript: hub.mjs decides with it before TypeScript can be loaded.
import { spawn } from 'node:child_process';

/**
 * A young generation of 4 MB a semi-space instead of V8's 16, for a process that loads
 * registries: a load's batches die young, so a larger young generation only holds more of them.
 * At 1,000,000 persons the full load's peak RSS falls from 186–196 MB to 160–169 MB with no loss
 * of speed (`npm run bench:load`, which runs the hub's side with these flags).
 */
export const BULK_NODE_FLAGS = ['--max-semi-space-size=4'];

/** The commands that load registries in bulk: a connector run, the demo, a copy of the hub. */
const BULK_COMMANDS = [['connectors', 'run'], ['demo'], ['copy']];

/** Signals that end the command: passed on to it, since a supervisor sends them to this process alone. */
const PASSED_ON = ['SIGINT', 'SIGTERM', 'SIGHUP'];

const given = (flag, flags) => flags.some((f) => f.split('=', 1)[0] === flag.split('=', 1)[0]);

/**
 * The flags this process lacks to run the command given by `args` (the arguments after the
 * script): none for the other commands, none where the flag was given (on the command line or in
 * NODE_OPTIONS, an operator's choice).
 */
export function missingNodeFlags(args, execArgv = process.execArgv, nodeOptions = process.env.NODE_OPTIONS) {
  const bulk = BULK_COMMANDS.some((words) => words.every((word, i) => args[i] === word));
  return bulk ? missingBulkFlags(execArgv, nodeOptions) : [];
}

/** BULK_NODE_FLAGS but those given on node's command line or in NODE_OPTIONS (an operator's choice). */
export function missingBulkFlags(execArgv = process.execArgv, nodeOptions = process.env.NODE_OPTIONS) {
  const present = [...execArgv, ...(nodeOptions ?? '').split(/\s+/)];
  return BULK_NODE_FLAGS.filter((flag) => !given(flag, present));
}

/**
 * Runs `script args` again in a node process with `flags` added (V8's heap is sized when a
 * process starts), with this process's stdio, and ends this process as it ends: with its exit
 * code, or by the signal that ended it.
 */
export async function rerunWithFlags(script, args, flags) {
  const child = spawn(process.execPath, [...process.execArgv, ...flags, script, ...args], {
    stdio: 'inherit',
  });
  const passOn = (signal) => child.kill(signal);
  for (const signal of PASSED_ON) process.on(signal, passOn);
  const [code, signal] = await new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (exitCode, exitSignal) => resolve([exitCode, exitSignal]));
  });
  for (const s of PASSED_ON) process.off(s, passOn);
  if (signal !== null) process.kill(process.pid, signal);
  else process.exitCode = code ?? 1;
}
