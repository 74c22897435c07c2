import assert from 'node:assert/strict';
import type { Command } from 'commander';
import { buildProgram } from '../../server/cli/main.ts';
import { readReadmeTable } from '../support/readme.ts';

const silentIo = { out: () => undefined, err: () => undefined, setExitCode: () => undefined };
/** Taken by every command and described once above the table. */
const GLOBAL_OPTIONS = new Set(['--db']);

interface LeafCommand {
  usage: string;
  options: string[];
}

/** Each command a user can run, as `hub a b`, with its own long options. */
function leafCommands(command: Command, prefix: string[] = []): LeafCommand[] {
  return command.commands.flatMap((sub) => {
    const words = [...prefix, sub.name()];
    if (sub.commands.length > 0) return leafCommands(sub, words);
    const options = sub.options.flatMap((o) => (o.long === undefined ? [] : [o.long]));
    return [{ usage: `hub ${words.join(' ')}`, options: options.filter((o) => !GLOBAL_OPTIONS.has(o)) }];
  });
}

/** A documented command line is the command, maybe followed by its arguments and options. */
const isUsageOf = (documented: string, usage: string) =>
  documented === usage || documented.startsWith(`${usage} `);

describe('README command table', () => {
  const { firstCells, strayRows } = readReadmeTable('Command line');
  // A cell may list several commands: `hub clients list [--json]` · `hub clients disable <id>`.
  const documented = firstCells.flatMap((cell) => [...cell.matchAll(/`(hub [^`]*)`/g)].map((m) => m[1]!));
  const commands = leafCommands(buildProgram(silentIo));

  it('is one table: no row of it stands apart further down the section', () => {
    assert.deepEqual(strayRows, []);
  });

  it('shows every command of the command line with each of its options', () => {
    assert.ok(commands.length > 20, `found only ${commands.length} commands`);
    const undocumented = commands.flatMap(({ usage, options }) => {
      const shown = documented.filter((d) => isUsageOf(d, usage));
      if (shown.length === 0) return [usage];
      return options.filter((o) => !shown.some((d) => d.includes(o))).map((o) => `${usage} ${o}`);
    });
    assert.deepEqual(undocumented, []);
  });

  it('shows no command the command line does not have', () => {
    assert.deepEqual(
      documented.filter((d) => !commands.some(({ usage }) => isUsageOf(d, usage))),
      [],
    );
  });
});
