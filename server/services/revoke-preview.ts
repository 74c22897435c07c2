import { fetchCatalog } from '../../warehouse/catalog.ts';
import { fetchQueryRecords } from '../../warehouse/query/saved-queries.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import type { QueryDefinition } from '../../warehouse/query/query-definition.ts';
import { validateQueryDefinition } from '../../warehouse/query/validate-query.ts';
import type { CatalogTable } from '../../warehouse/catalog.ts';
import type { AppContext } from '../context.ts';

export interface RevokeTarget {
  consumer: string;
  table: string;
  /** null: the whole table. */
  column: string | null;
}

export interface RevokePreview {
  /** Saved queries that read a column the revokes take away: their runs will answer 403. */
  queries: Array<{ name: string; entity: string; columns: string[] }>;
  /** Active clients that recently ran such a query or received such a column. */
  clients: Array<{ client_id: string; entity: string; name: string; reason: string[] }>;
}

const RECENT_DAYS = 30;
const RECENT_EVENTS = 5000;

/**
 * What a revoke would break, asked before it is made: the consumer's saved queries that read a
 * revoked column, and its clients that used one in the last 30 days (per the audit log). The
 * revoke itself is not affected by this answer; it only lets the custodian confirm knowingly.
 */
export async function previewRevokes(ctx: AppContext, revokes: RevokeTarget[]): Promise<RevokePreview> {
  const preview: RevokePreview = { queries: [], clients: [] };
  if (revokes.length === 0) return preview;
  const catalog = await fetchCatalog(ctx.knex);
  const removed = new Map<string, Set<string>>();
  for (const r of revokes) {
    const columns =
      r.column === null
        ? (catalog.find((t) => t.name === r.table)?.columns.map((c) => c.name) ?? [])
        : [r.column];
    const set = removed.get(r.consumer) ?? new Set<string>();
    for (const c of columns) set.add(`${r.table}.${c}`);
    removed.set(r.consumer, set);
  }
  const since = new Date(ctx.clock.now().getTime() - RECENT_DAYS * 86_400_000).toISOString();
  for (const [entity, columns] of removed) {
    const brokenQueries = new Set<string>();
    for (const { definition } of await fetchQueryRecords(ctx.knex, entity)) {
      const hit = listReads(definition, catalog).filter((ref) => columns.has(ref));
      if (hit.length > 0) {
        preview.queries.push({ name: definition.name, entity, columns: hit });
        brokenQueries.add(definition.name);
      }
    }
    const events = await ctx
      .knex('hub_audit')
      .where({ entity })
      .whereIn('action', ['api.call', 'query.run'])
      .where('at', '>=', since)
      .orderBy('id', 'desc')
      .limit(RECENT_EVENTS)
      .select<Array<{ actor: string; target: string | null; details: string }>>('actor', 'target', 'details');
    const reasons = new Map<string, Set<string>>();
    for (const e of events) {
      const queryName = /^POST \/api\/v1\/queries\/(.+)$/.exec(e.target ?? '')?.[1];
      const read = readColumns(e.details).filter((c) => columns.has(c));
      const why = [...(queryName !== undefined && brokenQueries.has(queryName) ? [queryName] : []), ...read];
      if (why.length > 0) reasons.set(e.actor, new Set([...(reasons.get(e.actor) ?? []), ...why]));
    }
    if (reasons.size === 0) continue;
    const clients = await ctx
      .knex('hub_clients')
      .whereIn('client_id', [...reasons.keys()])
      .where({ status: 'active' })
      .select<Array<{ client_id: string; entity: string; name: string }>>('client_id', 'entity', 'name');
    for (const c of clients)
      preview.clients.push({ ...c, reason: [...(reasons.get(c.client_id) ?? [])].sort() });
  }
  return preview;
}

function readColumns(details: string): string[] {
  try {
    const parsed = JSON.parse(details) as { columns?: unknown };
    return Array.isArray(parsed.columns)
      ? parsed.columns.filter((c): c is string => typeof c === 'string')
      : [];
  } catch {
    return [];
  }
}

/**
 * Every `table.column` the query engine counts as read for this definition (selected, filtered,
 * sorted, and each joined table's national ID): a revoke of any of them makes the query answer 403.
 */
function listReads(def: QueryDefinition, catalog: readonly CatalogTable[]): string[] {
  try {
    return [...new Set(validateQueryDefinition(def, catalog).columns.map((r) => `${r.table}.${r.column}`))];
  } catch (err) {
    // A definition that no longer fits the catalog is broken already, whatever the revoke does.
    if (err instanceof HubError && err.status === 400) return [];
    throw err;
  }
}
