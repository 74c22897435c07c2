import { HubError } from '../warehouse/core/errors.ts';
import type { TableAbility } from './ability.ts';

export interface ColumnRef {
  table: string;
  column: string;
}

/** Explicit reads (saved queries, query builder): one 403 naming every denied column, not the first one. */
export function authorizeColumns(ability: TableAbility, refs: ColumnRef[]): void {
  const denied = [
    ...new Set(
      refs.filter((r) => !ability.can('read', r.table, r.column)).map((r) => `${r.table}.${r.column}`),
    ),
  ].sort();
  if (denied.length > 0) {
    throw new HubError('column_not_granted', 403, `not granted: ${denied.join(', ')}`, { denied });
  }
}
