import type { AppContext } from '../server/context.ts';
import { isoNow } from '../warehouse/core/clock.ts';
import { fetchQueryRecords } from '../warehouse/query/saved-queries.ts';
import { validateQueryDefinition } from '../warehouse/query/validate-query.ts';
import type { CatalogTable } from '../warehouse/catalog.ts';
import { HubError } from '../warehouse/core/errors.ts';
import type { QueryDefinition } from '../warehouse/query/query-definition.ts';
import { buildAbility, type TableAbility } from './ability.ts';
import { fetchActiveAccess } from './ability-cache.ts';
import { nextAfterRevoke, planAccessChange, type AccessInput, type TableAccess } from './grants.ts';

export interface BrokenQuery {
  name: string;
  /** What the query touches of the table and could no longer read: `table.column`, or `table` when nothing of it is left. */
  denied: string[];
}

export interface AffectedClient {
  client_id: string;
  name: string;
}

export interface RevokePreview {
  consumer: string;
  table: string;
  before: TableAccess;
  after: TableAccess;
  /** The consumer's saved queries that would answer 403 after the revoke. */
  queries: BrokenQuery[];
  /** The consumer's active API clients: their person lookups lose what is revoked, and they can no longer run the broken queries. */
  clients: AffectedClient[];
}

/**
 * What `revokeAccess` would break, changing nothing: the same checks as the revoke (who may,
 * which table and columns), then the entity's ability as it would be afterwards, against which
 * every saved query of the entity is checked on everything it touches of the table: the table
 * itself (joined, even with none of its columns named), and each column selected, filtered or
 * sorted on.
 */
export async function previewRevoke(ctx: AppContext, input: AccessInput): Promise<RevokePreview> {
  const plan = await planAccessChange(ctx.knex, ctx, input, nextAfterRevoke);
  const table = plan.table.name;
  const { grants, ownTables } = await fetchActiveAccess(ctx.knex, input.consumer, isoNow(ctx.clock));
  const after = buildAbility(
    [
      ...grants.filter((g) => g.table !== table),
      ...(plan.after.wholeTable
        ? [{ table, column: null }]
        : plan.after.columns.map((column) => ({ table, column }))),
    ],
    ownTables,
  );
  const records = await fetchQueryRecords(ctx.knex, input.consumer);
  const catalog = await ctx.catalog.fetch();
  const queries = records
    .filter((r) => r.definition.tables.includes(table))
    .map((r) => ({ name: r.definition.name, denied: listDeniedReads(after, r.definition, table, catalog) }))
    .filter((q) => q.denied.length > 0);
  const changed =
    plan.before.wholeTable !== plan.after.wholeTable ||
    plan.before.columns.join() !== plan.after.columns.join();
  const clients = changed
    ? await ctx
        .knex('hub_clients')
        .where({ entity: input.consumer, status: 'active' })
        .orderBy('client_id')
        .select<AffectedClient[]>('client_id', 'name')
    : [];
  return { consumer: input.consumer, table, before: plan.before, after: plan.after, queries, clients };
}

/** What the query reads of the table (as the query engine counts reads: joined, selected, filtered, sorted, join keys) and could no longer. */
function listDeniedReads(
  ability: TableAbility,
  def: QueryDefinition,
  table: string,
  catalog: readonly CatalogTable[],
): string[] {
  if (!ability.can('read', table)) return [table];
  let reads;
  try {
    reads = validateQueryDefinition(def, catalog);
  } catch (err) {
    if (!(err instanceof HubError) || err.status !== 400) throw err;
    // A definition that no longer fits the catalog is already broken, whatever the revoke does.
    return [];
  }
  return [
    ...new Set(
      reads.columns
        .filter((r) => r.table === table && !ability.can('read', table, r.column))
        .map((r) => `${r.table}.${r.column}`),
    ),
  ];
}
