import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const PROJECT_ROOT = path.join(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The README's section under `## <title>`, as lines, up to the next section of that level. */
export function readReadmeSection(title: string): string[] {
  const readme = readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.notEqual(start, -1, `README has a "## ${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end === -1 ? undefined : end).split('\n');
}

/**
 * The section's first table: the first cell of each body row, and the table-like lines that
 * stand apart from it further down (a row that lost its table renders as plain text).
 */
export function readFirstTable(lines: string[]): { firstCells: string[]; strayRows: string[] } {
  const start = lines.findIndex((l) => l.startsWith('|'));
  assert.notEqual(start, -1, 'the section has a table');
  let end = start;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  // A cell may hold an escaped pipe (`a\|b`), which does not end it.
  const firstCells = lines.slice(start + 2, end).map((l) => l.split(/(?<!\\)\|/)[1]!.trim());
  return { firstCells, strayRows: lines.slice(end).filter((l) => l.startsWith('|')) };
}
