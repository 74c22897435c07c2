import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { CONFIG_VARIABLES } from '../../server/config.ts';
import { PROJECT_ROOT } from '../support/project-root.ts';
import { readReadmeTable } from '../support/readme.ts';

const SOURCE_FOLDERS = ['server', 'warehouse', 'connectors', 'privileges'];

/** Every `.ts` file of the hub itself. */
function sourceFiles(folder: string): string[] {
  return readdirSync(path.join(PROJECT_ROOT, folder), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => path.join(PROJECT_ROOT, folder, f));
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

describe('README configuration table', () => {
  const { firstCells, strayRows } = readReadmeTable('Configuration');
  const rows = firstCells.map((cell) => [...cell.matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!));
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
