import type { TableReference } from './copy-dialect.ts';

/** Referenced tables before the tables that refer to them, so foreign keys hold at every step; otherwise by name. */
export function sortByReferences(tables: string[], references: TableReference[]): string[] {
  const pending = new Set([...tables].sort());
  const sorted: string[] = [];
  while (pending.size > 0) {
    const ready = [...pending].find((t) =>
      references.every((r) => r.table !== t || r.references === t || !pending.has(r.references)),
    );
    // A cycle cannot be ordered; its tables follow by name.
    const next = ready ?? [...pending][0]!;
    sorted.push(next);
    pending.delete(next);
  }
  return sorted;
}
