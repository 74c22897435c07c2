import type { Knex } from 'knex';
import { saveCatalogTable } from '../warehouse/catalog.ts';
import { ensureRegistryTable } from '../warehouse/registry-tables.ts';
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
    await saveCatalogTable(knex, buildCatalogTableInput(def));
    await knex('hub_connectors')
      .insert({
        name: def.name,
        entity: def.entity,
        target_table: def.target.table,
        definition_file: def.file,
        mode: def.mode,
        schedule: def.schedule ?? null,
      })
      .onConflict('name')
      .merge(['entity', 'target_table', 'definition_file', 'mode', 'schedule']);
  }
}
