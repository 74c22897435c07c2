import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CONFIG_VARIABLES } from '../../server/config.ts';

const ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCE_FOLDERS = ['server', 'warehouse', 'connectors', 'privileges'];

/** Every `.ts` file of the hub itself, tests aside. */
function sourceFiles(folder: string): string[] {
  return readdirSync(path.join(ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.test.ts'))
    .map((f) => path.join(ROOT, folder, f));
}

/** Variables read straight from an environment object (`env.NAME`, `env['NAME']`) outside readConfig. */
function variablesReadInSource(): Set<string> {
  const names = new Set<string>();
  for (const file of SOURCE_FOLDERS.flatMap(sourceFiles)) {
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/\benv(?:\.([A-Z][A-Z0-9_]*)|\[['"]([A-Z][A-Z0-9_]*)['"]\])/g))
      names.add(m[1] ?? m[2]!);
  }
  return names;
}

/** The first cell of each row of the table under "## Configuration", as a list of its backticked names. */
function documentedVariables(): { rows: string[][]; strayRows: string[] } {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n## Configuration\n');
  assert.notEqual(start, -1, 'README has a "## Configuration" section');
  const end = readme.indexOf('\n## ', start + 1);
  const lines = readme.slice(start, end === -1 ? undefined : end).split('\n');
  const tableStart = lines.findIndex((l) => l.startsWith('|'));
  let tableEnd = tableStart;
  while (tableEnd < lines.length && lines[tableEnd]!.startsWith('|')) tableEnd++;
  const rows = lines
    .slice(tableStart + 2, tableEnd)
    .map((l) => [...l.split('|')[1]!.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!));
  const strayRows = lines.slice(tableEnd).filter((l) => l.startsWith('|'));
  return { rows, strayRows };
}

describe('README configuration table', () => {
  const { rows, strayRows } = documentedVariables();
  const documented = new Set(rows.flat());
  const read = new Set([...CONFIG_VARIABLES, ...variablesReadInSource()]);

  it('is one table: no row of it stands apart further down the section', () => {
    assert.deepEqual(strayRows, []);
  });

  it('names every environment variable the hub reads', () => {
    assert.ok(read.size > 20, `found only ${read.size} variables: the scan lost its way`);
    assert.deepEqual(
      [...read].filter((v) => !documented.has(v)),
      [],
    );
  });

  it('names no variable the hub does not read', () => {
    assert.ok(rows.length > 10 && rows.every((names) => names.length > 0), 'every row names a variable');
    assert.deepEqual(
      [...documented].filter((v) => !read.has(v)),
      [],
    );
  });
});
