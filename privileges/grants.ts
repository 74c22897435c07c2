import type { Knex } from 'knex';
import type { AppContext } from '../server/context.ts';
import { recordAudit } from '../warehouse/audit/record-audit.ts';
import { fetchCatalog, type CatalogTable } from '../warehouse/catalog.ts';
import { isoNow } from '../warehouse/core/clock.ts';
import { HubError, invalidRequest } from '../warehouse/core/errors.ts';
import type { Actor } from './actor.ts';
import { fetchGrantsVersion } from './ability-cache.ts';

export interface GrantInput {
  consumer: string;
  table: string;
  /** Empty: the whole table. */
  columns: string[];
  actor: Actor;
  /** Why the consumer needs the data and under which law; written on the grant rows this change adds. */
  purpose?: string;
  legalBasis?: string;
  /** ISO date-time after which the grant should be reviewed; absent: no end. */
  expiresAt?: string | null;
}

/** What an entity may read of one table. */
export interface TableAccess {
  wholeTable: boolean;
  /** The granted columns when not the whole table, in catalog order. */
  columns: string[];
}

export interface GrantChange {
  consumer: string;
  table: string;
  before: TableAccess;
  after: TableAccess;
  /** The grants version this change produced. */
  version: number;
}

export interface Grant {
  entity: string;
  table: string;
  /** null: the whole table. */
  column: string | null;
  grantedBy: string;
  grantedAt: string;
}

interface GrantRow {
  entity: string;
  table_name: string;
  column_name: string;
  granted_by: string;
  granted_at: string;
}

const ENTITY_CODE = /^[A-Z][A-Z0-9_]*$/;
const MAX_ENTITY_CODE_LENGTH = 16;
const WHOLE_TABLE = '';
const NO_ACCESS: TableAccess = { wholeTable: false, columns: [] };

/** Gives `consumer` read access to the whole table (no columns) or to more of its columns. */
export function grantAccess(ctx: AppContext, input: GrantInput): Promise<GrantChange> {
  return changeAccess(ctx, input, 'grant', (before, table, columns) => {
    if (columns.length === 0 || before.wholeTable) return { wholeTable: true, columns: [] };
    return { wholeTable: false, columns: inCatalogOrder(table, [...before.columns, ...columns]) };
  });
}

/** Takes back the whole table (no columns) or some columns; a whole-table grant keeps the other columns. */
export function revokeAccess(ctx: AppContext, input: GrantInput): Promise<GrantChange> {
  return changeAccess(ctx, input, 'revoke', (before, table, columns) => {
    if (columns.length === 0) return NO_ACCESS;
    const kept = before.wholeTable ? table.columns.map((c) => c.name) : before.columns;
    return { wholeTable: false, columns: kept.filter((name) => !columns.includes(name)) };
  });
}

export async function fetchGrants(
  ctx: AppContext,
  filter: { entity?: string; table?: string } = {},
): Promise<Grant[]> {
  const query = ctx.knex<GrantRow>('hub_grants').select('*').orderBy(['entity', 'table_name', 'column_name']);
  if (filter.entity !== undefined) query.where('entity', filter.entity);
  if (filter.table !== undefined) query.where('table_name', filter.table);
  const rows = await query;
  return rows.map((r) => ({
    entity: r.entity,
    table: r.table_name,
    column: r.column_name === WHOLE_TABLE ? null : r.column_name,
    grantedBy: r.granted_by,
    grantedAt: r.granted_at,
  }));
}

type NextAccess = (before: TableAccess, table: CatalogTable, columns: string[]) => TableAccess;

/**
 * Grants, the version bump and the audit event commit together: a reader that sees the new
 * version sees the new grants, and no change goes unaudited. The version is bumped first so
 * that its row lock queues concurrent grant changes behind this one.
 */
async function changeAccess(
  ctx: AppContext,
  input: GrantInput,
  action: 'grant' | 'revoke',
  next: NextAccess,
): Promise<GrantChange> {
  assertMayChangeGrants(input.actor);
  assertEntityCode(input.consumer);
  return ctx.knex.transaction(async (trx) => {
    await trx('hub_grants_version').where({ id: 1 }).increment('version', 1);
    const catalog = await fetchCatalog(trx);
    const table = findCatalogTable(catalog, input.table);
    assertCustodianOf(input.actor, table);
    const columns = assertCatalogColumns(table, input.columns);
    if (input.consumer === table.entity) {
      throw invalidRequest(`${input.consumer} owns ${table.name} and reads it without a grant`);
    }
    if (action === 'grant') await saveEntityIfMissing(trx, input.consumer);
    const before = await fetchTableAccess(trx, input.consumer, table);
    const after = next(before, table, columns);
    await saveTableAccess(trx, ctx, input, after);
    await recordAudit(trx, ctx.clock, {
      actor: input.actor.name,
      entity: input.consumer,
      action,
      target: table.name,
      details:
        action === 'grant' && input.purpose !== undefined ? { columns, ...grantTerms(input) } : { columns },
    });
    return {
      consumer: input.consumer,
      table: table.name,
      before,
      after,
      version: await fetchGrantsVersion(trx),
    };
  });
}

function assertMayChangeGrants(actor: Actor): void {
  if (actor.role === 'entity-admin')
    throw new HubError('forbidden', 403, `${actor.name} may not grant or revoke access`);
}

function assertCustodianOf(actor: Actor, table: CatalogTable): void {
  if (actor.role === 'super-admin') return;
  if (actor.role === 'custodian' && actor.entity === table.entity) return;
  throw new HubError(
    'forbidden',
    403,
    `${actor.name} may not grant or revoke access to ${table.name}, a table of ${table.entity}`,
  );
}

function assertEntityCode(code: string): void {
  if (!ENTITY_CODE.test(code) || code.length > MAX_ENTITY_CODE_LENGTH) {
    throw invalidRequest(
      `entity code ${JSON.stringify(code)} must match ${ENTITY_CODE.source} and be at most ${MAX_ENTITY_CODE_LENGTH} characters`,
    );
  }
}

function findCatalogTable(catalog: CatalogTable[], name: string): CatalogTable {
  const table = catalog.find((t) => t.name === name);
  if (table === undefined)
    throw new HubError('unknown_table', 404, `unknown table ${JSON.stringify(name)}`, { table: name });
  return table;
}

function assertCatalogColumns(table: CatalogTable, columns: string[]): string[] {
  const known = new Set(table.columns.map((c) => c.name));
  const unknown = [...new Set(columns.filter((c) => !known.has(c)))];
  if (unknown.length > 0) {
    throw new HubError(
      'unknown_column',
      400,
      `${table.name} has no column ${unknown.map((c) => JSON.stringify(c)).join(', ')}`,
      {
        table: table.name,
        unknown,
      },
    );
  }
  return inCatalogOrder(table, columns);
}

function inCatalogOrder(table: CatalogTable, columns: string[]): string[] {
  const wanted = new Set(columns);
  return table.columns.map((c) => c.name).filter((name) => wanted.has(name));
}

async function saveEntityIfMissing(trx: Knex.Transaction, code: string): Promise<void> {
  const existing = await trx('hub_entities').where({ code }).first<{ code: string } | undefined>('code');
  if (existing === undefined) await trx('hub_entities').insert({ code, label_en: code, label_ar: code });
}

async function fetchTableAccess(
  trx: Knex.Transaction,
  entity: string,
  table: CatalogTable,
): Promise<TableAccess> {
  const granted = await trx('hub_grants')
    .where({ entity, table_name: table.name })
    .pluck<string[]>('column_name');
  if (granted.includes(WHOLE_TABLE)) return { wholeTable: true, columns: [] };
  return { wholeTable: false, columns: inCatalogOrder(table, granted) };
}

/** Writes the difference only: rows that stay keep who granted them and when. */
async function saveTableAccess(
  trx: Knex.Transaction,
  ctx: AppContext,
  input: GrantInput,
  access: TableAccess,
): Promise<void> {
  const wanted = access.wholeTable ? [WHOLE_TABLE] : access.columns;
  const scope = { entity: input.consumer, table_name: input.table };
  const existing = await trx('hub_grants').where(scope).pluck<string[]>('column_name');
  const removed = existing.filter((column) => !wanted.includes(column));
  if (removed.length > 0) await trx('hub_grants').where(scope).whereIn('column_name', removed).delete();
  const added = wanted.filter((column) => !existing.includes(column));
  if (added.length === 0) return;
  const grantedAt = isoNow(ctx.clock);
  await trx('hub_grants').insert(
    added.map((column_name) => ({
      ...scope,
      column_name,
      granted_by: input.actor.name,
      granted_at: grantedAt,
      ...grantTerms(input),
    })),
  );
}

function grantTerms(input: GrantInput): {
  purpose: string | null;
  legal_basis: string | null;
  expires_at: string | null;
} {
  return {
    purpose: input.purpose ?? null,
    legal_basis: input.legalBasis ?? null,
    expires_at: input.expiresAt ?? null,
  };
}
