import { fetchCatalog } from '../catalog.ts';
import type { Warehouse } from '../db.ts';
import type { CitusDdlInput } from './build-citus-ddl.ts';
import { copyDialectFor } from './copy-dialects.ts';
import { fetchFreshHubSchema } from './fresh-hub-schema.ts';

/** The current catalog and the hub tables of a warehouse, as buildCitusDdl needs them. */
export async function fetchCitusDdlInput(warehouse: Warehouse): Promise<CitusDdlInput> {
  const dialect = copyDialectFor(warehouse.dialect, 'source');
  const fresh = await fetchFreshHubSchema();
  const catalog = await fetchCatalog(warehouse.knex);
  const present = new Set(await dialect.fetchTableNames(warehouse.knex));
  const hubTables = [...fresh.keys()].filter((t) => present.has(t));
  return {
    source: warehouse.displayUrl,
    registryTables: catalog.map((t) => ({ name: t.name, nationalIdColumn: t.nationalIdColumn, key: t.key })),
    hubTables,
    references: await dialect.fetchReferences(warehouse.knex),
  };
}
