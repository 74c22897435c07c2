import type { Knex } from 'knex';
import { whereAboutEntity, type AuditScope } from './audit-scope.ts';
import { WHO_READ_RUNS, WHO_READ_TABLE } from './who-read-statements.ts';

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

/**
 * The events that returned this person's data: found in each live run of the who-read index by
 * a seek, and among the subject rows not yet in a run by a scan of that tail. One statement, so
 * it reads one snapshot: a run made or merged meanwhile is seen either wholly or not at all.
 */
function eventsThatRead(knex: Knex, nationalId: string): Knex.QueryBuilder {
  const live = knex(WHO_READ_RUNS).where('state', 'live');
  const indexed = knex(WHO_READ_TABLE)
    .whereIn('run', live.clone().select('run'))
    .andWhere('national_id', nationalId)
    .select('audit_id');
  const tail = knex('hub_audit_subjects')
    .where(
      'audit_id',
      '>',
      knex.raw('(?)', [live.clone().select(knex.raw('COALESCE(MAX(last_audit_id), 0)'))]),
    )
    .andWhere('national_id', nationalId)
    .select('audit_id');
  return indexed.unionAll(tail);
}

interface WhoReadOptions {
  limit?: number;
  scope?: AuditScope;
}

/** fetchWhoRead's statement, unrun, so that each dialect's SQL can be compiled and checked. */
export function selectWhoRead(
  knex: Knex,
  nationalId: string,
  options: WhoReadOptions = {},
): Knex.QueryBuilder {
  const query = knex('hub_audit as a').whereIn('a.id', eventsThatRead(knex, nationalId));
  if (options.scope !== undefined) whereAboutEntity(query, options.scope, 'a');
  return query
    .orderBy('a.id', 'desc')
    .limit(options.limit ?? DEFAULT_LIMIT)
    .select('a.at', 'a.entity', 'a.actor', 'a.action', 'a.target', 'a.details');
}

/** Events that returned this person's data, newest first; with a scope, only those about its entity. */
export async function fetchWhoRead(
  knex: Knex,
  nationalId: string,
  options: WhoReadOptions = {},
): Promise<WhoReadRow[]> {
  const rows = (await selectWhoRead(knex, nationalId, options)) as JoinedRow[];
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
