import type { Knex } from 'knex';
import type { AppContext } from '../server/context.ts';
import { recordAudit } from '../warehouse/audit/record-audit.ts';
import { fetchCatalog, type CatalogTable } from '../warehouse/catalog.ts';
import { isoNow } from '../warehouse/core/clock.ts';
import { HubError, invalidRequest } from '../warehouse/core/errors.ts';
import type { Actor } from './actor.ts';
import { fetchGrantsVersion } from './ability-cache.ts';
import { inWriteTransaction } from '../warehouse/write-transaction.ts';

export interface AccessInput {
  consumer: string;
  table: string;
  /** Empty: the whole table. */
  columns: string[];
  actor: Actor;
}

/** A new grant says why, on what legal ground and (optionally) until when. */
export interface GrantInput extends AccessInput {
  purpose: string;
  legalBasis: string;
  /** YYYY-MM-DD (the grant counts through that day, UTC) or an ISO 8601 instant; absent or null: no expiry. */
  expires?: string | null;
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
  /** null: granted before purposes were recorded. */
  purpose: string | null;
  legalBasis: string | null;
  /** ISO instant from which the grant no longer counts; null: no expiry. */
  expiresAt: string | null;
  /** False once the expiry has passed. */
  active: boolean;
}

export interface GrantRow {
  entity: string;
  table_name: string;
  column_name: string;
  granted_by: string;
  granted_at: string;
  purpose: string | null;
  legal_basis: string | null;
  expires_at: string | null;
}

/** Who granted a row, why and until when: carried over when a grant is split or kept. */
type GrantTerms = Pick<GrantRow, 'granted_by' | 'granted_at' | 'purpose' | 'legal_basis' | 'expires_at'>;

const ENTITY_CODE = /^[A-Z][A-Z0-9_]*$/;
const MAX_ENTITY_CODE_LENGTH = 16;
const WHOLE_TABLE = '';
const NO_ACCESS: TableAccess = { wholeTable: false, columns: [] };
const MAX_TERM_LENGTH = 500;
const DATE_ONLY = /^(\d{4})-(\d{2})-(\d{2})$/;
const INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,3})?)?(?:Z|[+-]\d{2}:\d{2})$/;

/** Gives `consumer` read access to the whole table (no columns) or to more of its columns. */
export async function grantAccess(ctx: AppContext, input: GrantInput): Promise<GrantChange> {
  assertMayChangeGrants(input.actor);
  assertEntityCode(input.consumer);
  const terms = buildGrantTerms(ctx, input);
  return changeAccess(ctx, input, { action: 'grant', terms }, nextAfterGrant);
}

/** Takes back the whole table (no columns) or some columns; a whole-table grant keeps the other columns. */
export function revokeAccess(ctx: AppContext, input: AccessInput): Promise<GrantChange> {
  return changeAccess(ctx, input, { action: 'revoke' }, nextAfterRevoke);
}

const nextAfterGrant: NextAccess = (before, table, columns) => {
  if (columns.length === 0 || before.wholeTable) return { wholeTable: true, columns: [] };
  return { wholeTable: false, columns: inCatalogOrder(table, [...before.columns, ...columns]) };
};

export const nextAfterRevoke: NextAccess = (before, table, columns) => {
  if (columns.length === 0) return NO_ACCESS;
  const kept = before.wholeTable ? table.columns.map((c) => c.name) : before.columns;
  return { wholeTable: false, columns: kept.filter((name) => !columns.includes(name)) };
};

/** The instant a grant stops counting: a bare date counts through that whole day (UTC). */
export function parseGrantExpiry(text: string): string {
  const expiry = readExpiry(text);
  // Past year 9999 toISOString writes "+010000-...", which would sort before every date.
  if (!/^\d{4}-/.test(expiry))
    throw invalidRequest(`expires: ${JSON.stringify(text)} is too far ahead`, { field: 'expires' });
  return expiry;
}

function readExpiry(text: string): string {
  const date = DATE_ONLY.exec(text);
  if (date !== null) {
    const [year, month, day] = [Number(date[1]), Number(date[2]), Number(date[3])];
    const start = new Date(Date.UTC(year, month - 1, day));
    if (start.getUTCFullYear() !== year || start.getUTCMonth() !== month - 1 || start.getUTCDate() !== day) {
      throw invalidRequest(`expires: ${JSON.stringify(text)} is not a real date`, { field: 'expires' });
    }
    return new Date(start.getTime() + 24 * 3600 * 1000).toISOString();
  }
  const instant = INSTANT.test(text) ? new Date(text) : null;
  if (instant === null || Number.isNaN(instant.getTime())) {
    throw invalidRequest(
      `expires: ${JSON.stringify(text)} must be a date YYYY-MM-DD or an ISO 8601 time with its zone`,
      { field: 'expires' },
    );
  }
  return instant.toISOString();
}

function buildGrantTerms(ctx: AppContext, input: GrantInput): GrantTerms {
  const purpose = assertTerm('purpose', input.purpose);
  const legalBasis = assertTerm('legal_basis', input.legalBasis);
  let expiresAt: string | null = null;
  if (input.expires !== undefined && input.expires !== null) {
    expiresAt = parseGrantExpiry(input.expires);
    if (expiresAt <= isoNow(ctx.clock)) {
      throw invalidRequest(`expires: ${input.expires} has already passed`, { field: 'expires' });
    }
  }
  return {
    granted_by: input.actor.name,
    granted_at: isoNow(ctx.clock),
    purpose,
    legal_basis: legalBasis,
    expires_at: expiresAt,
  };
}

function assertTerm(field: 'purpose' | 'legal_basis', value: unknown): string {
  const text = typeof value === 'string' ? value.trim() : '';
  if (text === '')
    throw invalidRequest(`${field}: a new grant must say its ${field.replace('_', ' ')}`, { field });
  if (
    text.length > MAX_TERM_LENGTH ||
    [...text].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f)
  ) {
    throw invalidRequest(`${field}: at most ${MAX_TERM_LENGTH} characters on one line`, { field });
  }
  return text;
}

/** A grant counts while it has no expiry or its expiry is still ahead. */
export function whereGrantActive(query: Knex.QueryBuilder, now: string): Knex.QueryBuilder {
  return query.where((q) => void q.whereNull('expires_at').orWhere('expires_at', '>', now));
}

export async function fetchGrants(
  ctx: AppContext,
  filter: { entity?: string; table?: string } = {},
): Promise<Grant[]> {
  const query = ctx.knex<GrantRow>('hub_grants').select('*').orderBy(['entity', 'table_name', 'column_name']);
  if (filter.entity !== undefined) query.where('entity', filter.entity);
  if (filter.table !== undefined) query.where('table_name', filter.table);
  const rows = await query;
  const now = isoNow(ctx.clock);
  return rows.map((r) => ({
    entity: r.entity,
    table: r.table_name,
    column: r.column_name === WHOLE_TABLE ? null : r.column_name,
    grantedBy: r.granted_by,
    grantedAt: r.granted_at,
    purpose: r.purpose,
    legalBasis: r.legal_basis,
    expiresAt: r.expires_at,
    active: r.expires_at === null || r.expires_at > now,
  }));
}

type NextAccess = (before: TableAccess, table: CatalogTable, columns: string[]) => TableAccess;

type AccessChange = { action: 'grant'; terms: GrantTerms } | { action: 'revoke' };

/** What a change of `input` would do, read without writing: the table, the columns named, before and after. */
export async function planAccessChange(
  executor: Knex | Knex.Transaction,
  ctx: AppContext,
  input: AccessInput,
  next: NextAccess,
): Promise<{ table: CatalogTable; columns: string[]; before: TableAccess; after: TableAccess }> {
  assertMayChangeGrants(input.actor);
  assertEntityCode(input.consumer);
  const catalog = await fetchCatalog(executor);
  const table = findCatalogTable(catalog, input.table);
  assertCustodianOf(input.actor, table);
  const columns = assertCatalogColumns(table, input.columns);
  if (input.consumer === table.entity) {
    throw invalidRequest(`${input.consumer} owns ${table.name} and reads it without a grant`);
  }
  const before = await fetchTableAccess(executor, ctx, input.consumer, table);
  return { table, columns, before, after: next(before, table, columns) };
}

/**
 * Grants, the version bump and the audit event commit together: a reader that sees the new
 * version sees the new grants, and no change goes unaudited. The version is bumped first so
 * that its row lock queues concurrent grant changes behind this one.
 */
async function changeAccess(
  ctx: AppContext,
  input: AccessInput,
  change: AccessChange,
  next: NextAccess,
): Promise<GrantChange> {
  assertMayChangeGrants(input.actor);
  assertEntityCode(input.consumer);
  return inWriteTransaction(ctx.knex, async (trx) => {
    await trx('hub_grants_version').where({ id: 1 }).increment('version', 1);
    const { table, columns, before, after } = await planAccessChange(trx, ctx, input, next);
    if (change.action === 'grant') await saveEntityIfMissing(trx, input.consumer);
    await saveTableAccess(trx, ctx, input, change, columns, after);
    const terms =
      change.action === 'grant'
        ? {
            purpose: change.terms.purpose,
            legal_basis: change.terms.legal_basis,
            expires_at: change.terms.expires_at,
          }
        : {};
    await recordAudit(trx, ctx.clock, {
      actor: input.actor.name,
      entity: input.consumer,
      action: change.action,
      target: table.name,
      details: { columns, ...terms },
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

/** An expired grant reads as no grant: it neither counts nor blocks a new one. */
async function fetchTableAccess(
  executor: Knex | Knex.Transaction,
  ctx: AppContext,
  entity: string,
  table: CatalogTable,
): Promise<TableAccess> {
  const granted = await whereGrantActive(
    executor('hub_grants').where({ entity, table_name: table.name }),
    isoNow(ctx.clock),
  ).pluck<string[]>('column_name');
  if (granted.includes(WHOLE_TABLE)) return { wholeTable: true, columns: [] };
  return { wholeTable: false, columns: inCatalogOrder(table, granted) };
}

/**
 * Writes the grant rows `access` needs. A row that stays keeps who granted it, why and until
 * when; a column split off a whole-table grant inherits the whole table's terms; the rows a
 * grant names (renewals included) take the new terms. Expired rows are replaced or removed.
 */
async function saveTableAccess(
  trx: Knex.Transaction,
  ctx: AppContext,
  input: AccessInput,
  change: AccessChange,
  named: string[],
  access: TableAccess,
): Promise<void> {
  const scope = { entity: input.consumer, table_name: input.table };
  const now = isoNow(ctx.clock);
  const existing = await trx<GrantRow>('hub_grants').where(scope).select('*');
  const active = new Map(
    existing
      .filter((r) => r.expires_at === null || r.expires_at > now)
      .map((r) => [r.column_name, r] as const),
  );
  const wanted = access.wholeTable ? [WHOLE_TABLE] : access.columns;
  const renewed = new Set(change.action === 'grant' ? (named.length === 0 ? [WHOLE_TABLE] : named) : []);
  const rows: GrantRow[] = [];
  for (const column of wanted) {
    const kept = active.get(column);
    const terms: GrantTerms | undefined =
      change.action === 'grant' && (renewed.has(column) || kept === undefined)
        ? change.terms
        : (kept ?? active.get(WHOLE_TABLE));
    if (terms === undefined)
      throw new Error(`no terms for ${input.table}.${column}: the grants changed under this transaction`);
    rows.push({ ...scope, column_name: column, ...pickTerms(terms) });
  }
  const unchanged = (r: GrantRow) => existing.some((e) => sameGrantRow(e, r));
  if (rows.every(unchanged) && existing.length === rows.length) return;
  await trx('hub_grants').where(scope).delete();
  if (rows.length > 0) await trx('hub_grants').insert(rows);
}

function pickTerms(t: GrantTerms): GrantTerms {
  return {
    granted_by: t.granted_by,
    granted_at: t.granted_at,
    purpose: t.purpose,
    legal_basis: t.legal_basis,
    expires_at: t.expires_at,
  };
}

function sameGrantRow(a: GrantRow, b: GrantRow): boolean {
  return (
    a.column_name === b.column_name &&
    a.granted_by === b.granted_by &&
    a.granted_at === b.granted_at &&
    a.purpose === b.purpose &&
    a.legal_basis === b.legal_basis &&
    a.expires_at === b.expires_at
  );
}
