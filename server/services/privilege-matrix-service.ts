import type { Actor } from '../../privileges/actor.ts';
import { fetchGrants, grantAccess, revokeAccess } from '../../privileges/grants.ts';
import { fetchCatalog, fetchEntities, type CatalogTable, type Label } from '../../warehouse/catalog.ts';
import { HubError, invalidRequest } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { previewRevoke } from '../../privileges/preview-revoke.ts';

export type CellState = 'all' | 'some' | 'none';

export interface MatrixEntity {
  code: string;
  label: Label;
}

/** One row of a matrix: a table (table matrix) or a column of one table (column matrix). */
export interface MatrixRow {
  key: string;
  table: string;
  label: Label;
  owner: string;
  /** Per consumer: 'all' whole table or granted column, 'some' some columns of the table, 'none'. */
  cells: Record<string, CellState>;
}

export interface PrivilegeMatrix {
  consumers: MatrixEntity[];
  rows: MatrixRow[];
  tables: Array<{ name: string; label: Label; owner: string }>;
}

/** One cell change: for the table matrix the column is null (the whole table). */
export interface CellChange {
  consumer: string;
  table: string;
  column: string | null;
}

export interface MatrixPlan {
  grants: CellChange[];
  revokes: CellChange[];
}

export interface GrantTerms {
  purpose: string;
  legalBasis: string;
  expiresAt: string | null;
}

/** The tables the actor grants: all for a super admin, its own entity's for a custodian. */
function grantableTables(actor: Actor, catalog: CatalogTable[]): CatalogTable[] {
  if (actor.role === 'super-admin') return catalog;
  if (actor.role === 'custodian') return catalog.filter((t) => t.entity === actor.entity);
  throw new HubError('forbidden', 403, `${actor.name} may not grant or revoke access`);
}

async function fetchMatrixInputs(ctx: AppContext, actor: Actor) {
  const catalog = await fetchCatalog(ctx.knex);
  const tables = grantableTables(actor, catalog);
  const entities = await fetchEntities(ctx.knex);
  const grants = await fetchGrants(ctx);
  return { tables, entities, grants };
}

/** Custodian's tables × consuming entities; an owner reads its own tables and has no cell. */
export async function fetchTableMatrix(ctx: AppContext, actor: Actor): Promise<PrivilegeMatrix> {
  const { tables, entities, grants } = await fetchMatrixInputs(ctx, actor);
  const consumers = entities.filter((e) => actor.role === 'super-admin' || e.code !== actor.entity);
  const rows = tables.map((t) => ({
    key: t.name,
    table: t.name,
    label: t.label,
    owner: t.entity,
    cells: Object.fromEntries(
      consumers.map((c): [string, CellState] => {
        const mine = grants.filter((g) => g.entity === c.code && g.table === t.name);
        const state = mine.some((g) => g.column === null) ? 'all' : mine.length > 0 ? 'some' : 'none';
        return [c.code, state];
      }),
    ),
  }));
  return { consumers, rows, tables: tables.map((t) => ({ name: t.name, label: t.label, owner: t.entity })) };
}

/** One table's columns × consuming entities; a whole-table grant ticks every column. */
export async function fetchColumnMatrix(
  ctx: AppContext,
  actor: Actor,
  tableName: string,
): Promise<PrivilegeMatrix> {
  const { tables, entities, grants } = await fetchMatrixInputs(ctx, actor);
  const table = tables.find((t) => t.name === tableName);
  if (table === undefined) {
    const exists = (await fetchCatalog(ctx.knex)).some((t) => t.name === tableName);
    if (exists) throw new HubError('forbidden', 403, `${actor.name} may not grant access to ${tableName}`);
    throw new HubError('unknown_table', 404, `unknown table ${JSON.stringify(tableName)}`);
  }
  const consumers = entities.filter((e) => e.code !== table.entity);
  const rows = table.columns.map((col) => ({
    key: col.name,
    table: table.name,
    label: col.label,
    owner: table.entity,
    cells: Object.fromEntries(
      consumers.map((c): [string, CellState] => {
        const mine = grants.filter((g) => g.entity === c.code && g.table === table.name);
        return [c.code, mine.some((g) => g.column === null || g.column === col.name) ? 'all' : 'none'];
      }),
    ),
  }));
  return { consumers, rows, tables: tables.map((t) => ({ name: t.name, label: t.label, owner: t.entity })) };
}

/**
 * The difference between the ticked cells and the matrix as it is: a ticked cell that was not
 * fully granted is a grant, an unticked cell that was fully granted is a revoke.
 * Cells the form did not show are left alone.
 */
export function planMatrixChanges(
  matrix: PrivilegeMatrix,
  ticked: Set<string>,
  kind: 'tables' | 'columns',
): MatrixPlan {
  const plan: MatrixPlan = { grants: [], revokes: [] };
  for (const row of matrix.rows) {
    for (const consumer of matrix.consumers) {
      const state = row.cells[consumer.code];
      if (state === undefined || consumer.code === row.owner) continue;
      const change = {
        consumer: consumer.code,
        table: row.table,
        column: kind === 'columns' ? row.key : null,
      };
      const isTicked = ticked.has(`${consumer.code}:${row.key}`);
      if (isTicked && state !== 'all') plan.grants.push(change);
      // A table granted in part is changed column by column, in the column matrix.
      if (!isTicked && state === 'all') plan.revokes.push(change);
    }
  }
  return plan;
}

/** What the plan's revokes would break, per consumer and table, as `hub revoke --dry-run` reports it. */
export interface PlanPreview {
  queries: Array<{ name: string; entity: string; denied: string[] }>;
  clients: Array<{ client_id: string; entity: string; name: string; tables: string[] }>;
}

export async function previewPlan(ctx: AppContext, actor: Actor, plan: MatrixPlan): Promise<PlanPreview> {
  const preview: PlanPreview = { queries: [], clients: [] };
  const clients = new Map<string, PlanPreview['clients'][number]>();
  for (const [key, changes] of groupByTarget(plan.revokes)) {
    const [consumer, table] = key.split(':') as [string, string];
    const columns = changes.flatMap((c) => (c.column === null ? [] : [c.column]));
    const result = await previewRevoke(ctx, { consumer, table, columns, actor });
    for (const q of result.queries)
      preview.queries.push({ name: q.name, entity: consumer, denied: q.denied });
    for (const c of result.clients) {
      const seen = clients.get(c.client_id) ?? { ...c, entity: consumer, tables: [] };
      seen.tables.push(table);
      clients.set(c.client_id, seen);
    }
  }
  preview.clients = [...clients.values()];
  return preview;
}

const MAX_TERM_LENGTH = 400;

/** A new grant states why and under which law; the expiry is optional but must be a real future date. */
export function assertGrantTerms(
  input: { purpose?: unknown; legal_basis?: unknown; expires_at?: unknown },
  now: Date,
): GrantTerms {
  const text = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
  const purpose = text(input.purpose);
  const legalBasis = text(input.legal_basis);
  const expires = text(input.expires_at);
  const fields: string[] = [];
  if (purpose === '' || purpose.length > MAX_TERM_LENGTH) fields.push('purpose');
  if (legalBasis === '' || legalBasis.length > MAX_TERM_LENGTH) fields.push('legal_basis');
  let expiresAt: string | null = null;
  if (expires !== '') {
    const date = /^\d{4}-\d{2}-\d{2}$/.test(expires) ? new Date(`${expires}T23:59:59.999Z`) : new Date(NaN);
    if (Number.isNaN(date.getTime()) || date.toISOString().slice(0, 10) !== expires || date <= now)
      fields.push('expires_at');
    else expiresAt = date.toISOString();
  }
  if (fields.length > 0) throw invalidRequest(`a grant needs: ${fields.join(', ')}`, { fields });
  return { purpose, legalBasis, expiresAt };
}

/** Applies the plan through the grant service, one table and consumer at a time, so each change is audited. */
export async function applyMatrixPlan(
  ctx: AppContext,
  actor: Actor,
  plan: MatrixPlan,
  terms: GrantTerms | null,
): Promise<void> {
  for (const [key, changes] of groupByTarget(plan.revokes)) {
    const [consumer, table] = key.split(':') as [string, string];
    await revokeAccess(ctx, {
      consumer,
      table,
      columns: changes.flatMap((c) => (c.column === null ? [] : [c.column])),
      actor,
    });
  }
  if (plan.grants.length > 0 && terms === null)
    throw invalidRequest('a grant needs: purpose, legal_basis', { fields: ['purpose', 'legal_basis'] });
  for (const [key, changes] of groupByTarget(plan.grants)) {
    const [consumer, table] = key.split(':') as [string, string];
    const columns = changes.flatMap((c) => (c.column === null ? [] : [c.column]));
    await grantAccess(ctx, {
      consumer,
      table,
      columns,
      actor,
      purpose: terms!.purpose,
      legalBasis: terms!.legalBasis,
      expires: terms!.expiresAt,
    });
  }
}

function groupByTarget(changes: CellChange[]): Map<string, CellChange[]> {
  const groups = new Map<string, CellChange[]>();
  for (const change of changes) {
    const key = `${change.consumer}:${change.table}`;
    groups.set(key, [...(groups.get(key) ?? []), change]);
  }
  return groups;
}
