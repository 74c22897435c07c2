import { fetchAbility } from '../../privileges/ability-cache.ts';
import { permittedColumns } from '../../privileges/permitted-columns.ts';
import type { CatalogColumn, Label } from '../../warehouse/catalog.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { assertEntityExists } from './client-service.ts';

export interface CatalogTableSummary {
  table: string;
  /** The entity whose registry the table holds. */
  entity: string;
  label: Label;
  columns: CatalogColumn[];
}

/**
 * The catalog as a query writer needs it: every table and column with its type and English and
 * Arabic labels, or, for one entity, only what that entity may read now (its own tables and its
 * grants), so a saved query written from this list passes the grant check.
 */
export async function describeCatalog(ctx: AppContext, entity?: string): Promise<CatalogTableSummary[]> {
  if (!(await ctx.knex.schema.hasTable('hub_tables'))) {
    throw new HubError('not_migrated', 409, 'this warehouse has no catalog yet: run hub migrate');
  }
  const catalog = await ctx.catalog.fetch();
  const ability =
    entity === undefined
      ? undefined
      : await fetchAbility(ctx, ctx.abilities, await assertEntityExists(ctx.knex, entity));
  return catalog.flatMap((table) => {
    const readable = ability === undefined ? null : new Set(permittedColumns(ability, table));
    const columns = readable === null ? table.columns : table.columns.filter((c) => readable.has(c.name));
    if (columns.length === 0) return [];
    return [{ table: table.name, entity: table.entity, label: table.label, columns }];
  });
}
