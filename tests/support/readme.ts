import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { PROJECT_ROOT } from './project-root.ts';

/**
 * The first table of the README's section `## <title>`: the first cell of each body row, and the
 * table-like lines that stand apart from it further down the section (a row that lost its table
 * renders as plain text).
 */
export function readReadmeTable(title: string): { firstCells: string[]; strayRows: string[] } {
  const readme = readFileSync(path.join(PROJECT_ROOT, 'README.md'), 'utf8');
  const sectionStart = readme.indexOf(`\n## ${title}\n`);
  assert.notEqual(sectionStart, -1, `README has a "## ${title}" section`);
  const sectionEnd = readme.indexOf('\n## ', sectionStart + 1);
  const lines = readme.slice(sectionStart, sectionEnd === -1 ? undefined : sectionEnd).split('\n');
  const start = lines.findIndex((l) => l.startsWith('|'));
  assert.notEqual(start, -1, `the README's "${title}" section has a table`);
  let end = start;
  while (end < lines.length && lines[end]!.startsWith('|')) end++;
  // A cell may hold an escaped pipe (`a\|b`), which does not end it.
  const firstCells = lines.slice(start + 2, end).map((l) => l.split(/(?<!\\)\|/)[1]!.trim());
  return { firstCells, strayRows: lines.slice(end).filter((l) => l.startsWith('|')) };
}
