import type { CatalogTableInput, Label } from '../warehouse/catalog.ts';
import type { RegistryTableSpec } from '../warehouse/registry-tables.ts';
import type { ConnectorDefinition } from './definition.ts';

export function buildRegistryTableSpec(def: ConnectorDefinition): RegistryTableSpec {
  return {
    table: def.target.table,
    nationalIdColumn: def.target.national_id,
    key: def.key,
    columns: Object.entries(def.columns).map(([name, c]) => ({ name, type: c.type, length: c.length })),
    indexes: def.indexes,
  };
}

const humanize = (name: string) => name.replace(/_/g, ' ').replace(/^./, (c) => c.toUpperCase());
const labelOr = (label: Label | undefined, name: string): Label =>
  label ?? { en: humanize(name), ar: humanize(name) };

export function buildCatalogTableInput(def: ConnectorDefinition): CatalogTableInput {
  return {
    ...buildRegistryTableSpec(def),
    entity: { code: def.entity, label: labelOr(def.entity_label, def.entity) },
    connector: def.name,
    label: labelOr(def.target.label, def.target.table),
    columns: Object.entries(def.columns).map(([name, c]) => ({
      name,
      type: c.type,
      length: c.length,
      label: labelOr(c.label, name),
      holdsNationalId: name === def.target.national_id || c.national_id === true,
    })),
  };
}
