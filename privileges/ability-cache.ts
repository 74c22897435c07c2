import type { Knex } from 'knex';
import type { AppContext } from '../server/context.ts';
import { buildAbility, type TableAbility } from './ability.ts';

/**
 * Abilities of one process, valid for one grants version. Every grant and revoke bumps the
 * version in its own transaction, so a version seen unchanged means no grant changed since the
 * abilities were built, in this process or any other on the same warehouse.
 */
export class AbilityCache {
  #version: number | null = null;
  readonly #abilities = new Map<string, TableAbility>();

  find(entity: string, version: number): TableAbility | undefined {
    return this.#version === version ? this.#abilities.get(entity) : undefined;
  }

  save(entity: string, version: number, ability: TableAbility): void {
    // A request that read an older version may finish after one that read a newer version.
    if (this.#version !== null && version < this.#version) return;
    if (this.#version !== version) {
      this.#abilities.clear();
      this.#version = version;
    }
    this.#abilities.set(entity, ability);
  }
}

export function createAbilityCache(): AbilityCache {
  return new AbilityCache();
}

export async function fetchGrantsVersion(knex: Knex | Knex.Transaction): Promise<number> {
  const row = await knex('hub_grants_version')
    .where({ id: 1 })
    .first<{ version: number | string } | undefined>('version');
  if (row === undefined) throw new Error('hub_grants_version has no row: the warehouse is not migrated');
  return Number(row.version);
}

/**
 * The entity's ability for this request: one primary-key read of the grants version, and a
 * rebuild only when the version moved. The version is read before the grants, so the grants
 * are at least as new as the version they are cached under; a newer state under an older
 * version only costs one more rebuild, never a stale allow.
 */
export async function fetchAbility(
  ctx: AppContext,
  cache: AbilityCache,
  entity: string,
): Promise<TableAbility> {
  const version = await fetchGrantsVersion(ctx.knex);
  const cached = cache.find(entity, version);
  if (cached !== undefined) return cached;
  const ability = await buildEntityAbility(ctx.knex, entity);
  cache.save(entity, version, ability);
  return ability;
}

async function buildEntityAbility(knex: Knex, entity: string): Promise<TableAbility> {
  const grants = await knex('hub_grants')
    .where({ entity })
    .select<Array<{ table_name: string; column_name: string }>>('table_name', 'column_name');
  const ownTables = await knex('hub_tables').where({ entity }).pluck<string[]>('name');
  return buildAbility(
    grants.map((g) => ({ table: g.table_name, column: g.column_name === '' ? null : g.column_name })),
    ownTables,
  );
}
