import type { Knex } from 'knex';
import type { AppContext } from '../server/context.ts';
import { isoNow } from '../warehouse/core/clock.ts';
import type { PreparedReads } from '../warehouse/prepared-reads.ts';
import { buildAbility, type GrantedColumn, type TableAbility } from './ability.ts';

interface CachedAbility {
  ability: TableAbility;
  /** The earliest expiry among the grants it was built from (ISO instant), or null. */
  validUntil: string | null;
}

/**
 * Abilities of one process, valid for one grants version and, each, until the earliest expiry
 * of the grants it was built from. Every grant and revoke bumps the version in its own
 * transaction, so a version seen unchanged means no grant changed since the abilities were
 * built, in this process or any other on the same warehouse. An expiry changes what an entity
 * may read without anyone writing, so the version cannot see it: the entry itself stops
 * serving at that instant, by the injected clock.
 */
export class AbilityCache {
  #version: number | null = null;
  readonly #abilities = new Map<string, CachedAbility>();

  find(entity: string, version: number, now: string): TableAbility | undefined {
    if (this.#version !== version) return undefined;
    const cached = this.#abilities.get(entity);
    if (cached === undefined || (cached.validUntil !== null && now >= cached.validUntil)) return undefined;
    return cached.ability;
  }

  save(entity: string, version: number, ability: TableAbility, validUntil: string | null = null): void {
    // A request that read an older version may finish after one that read a newer version.
    if (this.#version !== null && version < this.#version) return;
    if (this.#version !== version) {
      this.#abilities.clear();
      this.#version = version;
    }
    this.#abilities.set(entity, { ability, validUntil });
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

const GRANTS_VERSION_SQL = 'SELECT version FROM hub_grants_version WHERE id = 1';

/** fetchGrantsVersion for every request: the same primary-key read, prepared once (see PreparedReads). */
async function readGrantsVersion(reads: PreparedReads): Promise<number> {
  const row = await reads.first<{ version: number | string }>(GRANTS_VERSION_SQL, []);
  if (row === undefined) throw new Error('hub_grants_version has no row: the warehouse is not migrated');
  return Number(row.version);
}

/**
 * The entity's ability for this request: one primary-key read of the grants version, and a
 * rebuild only when the version moved or a grant it was built from has expired since. The
 * version is read before the grants, so the grants are at least as new as the version they
 * are cached under; a newer state under an older version only costs one more rebuild, never a
 * stale allow. The time is taken once, before the grants are read, so an entry is never valid
 * past an expiry its build did not see as passed.
 */
export async function fetchAbility(
  ctx: Pick<AppContext, 'clock' | 'reader' | 'reads'>,
  cache: AbilityCache,
  entity: string,
): Promise<TableAbility> {
  const knex = ctx.reader;
  const now = isoNow(ctx.clock);
  const version = await readGrantsVersion(ctx.reads);
  const cached = cache.find(entity, version, now);
  if (cached !== undefined) return cached;
  const { ability, validUntil } = await buildEntityAbility(knex, entity, now);
  cache.save(entity, version, ability, validUntil);
  return ability;
}

/** What an entity may read at `now`: its grants that have not expired, and the tables it owns. */
export async function fetchActiveAccess(
  knex: Knex | Knex.Transaction,
  entity: string,
  now: string,
): Promise<{ grants: Array<GrantedColumn & { expiresAt: string | null }>; ownTables: string[] }> {
  const rows = await knex('hub_grants')
    .where({ entity })
    .where((q) => void q.whereNull('expires_at').orWhere('expires_at', '>', now))
    .select<Array<{ table_name: string; column_name: string; expires_at: string | null }>>(
      'table_name',
      'column_name',
      'expires_at',
    );
  const ownTables = await knex('hub_tables').where({ entity }).pluck<string[]>('name');
  const grants = rows.map((g) => ({
    table: g.table_name,
    column: g.column_name === '' ? null : g.column_name,
    expiresAt: g.expires_at,
  }));
  return { grants, ownTables };
}

/** The ability from the grants that count at `now`, and when the first of them stops counting. */
async function buildEntityAbility(knex: Knex, entity: string, now: string): Promise<CachedAbility> {
  const { grants, ownTables } = await fetchActiveAccess(knex, entity, now);
  const expiries = grants.flatMap((g) => (g.expiresAt === null ? [] : [g.expiresAt])).sort();
  return { ability: buildAbility(grants, ownTables), validUntil: expiries[0] ?? null };
}
