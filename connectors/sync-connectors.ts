import type { Knex } from 'knex';
import { saveCatalogTable } from '../warehouse/catalog.ts';
import { refreshPersonTablesView } from '../warehouse/person-tables-view.ts';
import { ensureRegistryTable } from '../warehouse/registry-tables.ts';
import { saveRowByKey } from '../warehouse/save-by-key.ts';
import type { ConnectorDefinition } from './definition.ts';
import { buildCatalogTableInput, buildRegistryTableSpec } from './registry-spec.ts';

/**
 * Brings the warehouse in line with the connector definitions: registry tables exist with
 * every defined column, the catalog describes them, and each connector has a state row
 * (which keeps its watermark across definition edits).
 */
export async function syncConnectors(knex: Knex, defs: ConnectorDefinition[]): Promise<void> {
  for (const def of defs) {
    await ensureRegistryTable(knex, buildRegistryTableSpec(def));
    const known = await knex('hub_tables')
      .where({ name: def.target.table })
      .first<{ entity: string } | undefined>('entity');
    await saveCatalogTable(knex, buildCatalogTableInput(def));
    // An entity reads its own tables without a grant; abilities are rebuilt only when the grants
    // version moves, so a table new to the catalog (or to its entity) moves it too.
    if (known === undefined || known.entity !== def.entity) {
      await knex('hub_grants_version').where({ id: 1 }).increment('version', 1);
    }
    await saveRowByKey(
      knex,
      'hub_connectors',
      { name: def.name },
      {
        entity: def.entity,
        target_table: def.target.table,
        definition_file: def.file,
        mode: def.mode,
        schedule: def.schedule ?? null,
      },
    );
  }
  await refreshPersonTablesView(knex);
}
