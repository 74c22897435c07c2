import type { Knex } from 'knex';
import { whereAboutEntity, type AuditScope } from './audit-scope.ts';

export interface WhoReadRow {
  at: string;
  entity: string | null;
  actor: string;
  action: string;
  target: string | null;
  /** "table.column" names the event returned; empty when the event did not list them. */
  columns: string[];
}

interface JoinedRow {
  at: string;
  entity: string | null;
  actor: string;
  action: string;
  target: string | null;
  details: string;
}

const DEFAULT_LIMIT = 100;

/** Events that returned this person's data, newest first; with a scope, only those about its entity. */
export async function fetchWhoRead(
  knex: Knex,
  nationalId: string,
  options: { limit?: number; scope?: AuditScope } = {},
): Promise<WhoReadRow[]> {
  const query = knex('hub_audit_subjects as s')
    .join('hub_audit as a', 'a.id', 's.audit_id')
    .where('s.national_id', nationalId);
  if (options.scope !== undefined) whereAboutEntity(query, options.scope, 'a');
  const rows: JoinedRow[] = await query
    .orderBy('a.id', 'desc')
    .limit(options.limit ?? DEFAULT_LIMIT)
    .select('a.at', 'a.entity', 'a.actor', 'a.action', 'a.target', 'a.details');
  return rows.map(({ details, ...row }) => ({ ...row, columns: readColumns(details) }));
}

function readColumns(details: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(details);
  } catch {
    return [];
  }
  if (
    typeof parsed !== 'object' ||
    parsed === null ||
    !('columns' in parsed) ||
    !Array.isArray(parsed.columns)
  )
    return [];
  return parsed.columns.filter((c): c is string => typeof c === 'string');
}
