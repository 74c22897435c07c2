import { stringify } from 'csv-stringify/sync';
import { isIP } from 'node:net';
import path from 'node:path';
import type { Actor } from '../../privileges/actor.ts';
import { recordAudit, type ChainedFields } from '../../warehouse/audit/record-audit.ts';
import { whereAboutEntity, type AuditScope } from '../../warehouse/audit/audit-scope.ts';
import { fetchWhoRead, type WhoReadRow } from '../../warehouse/audit/who-read.ts';
import { fetchCatalog, fetchEntities, type Label } from '../../warehouse/catalog.ts';
import { HubError, invalidRequest } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { verifyAuditLog as verifyWholeAuditLog, type AuditLogReport } from './audit-log-service.ts';
import { fetchClient, fetchClients, type ClientRecord } from './client-service.ts';
import { fetchConnectorOverview, type ConnectorOverview } from './connector-service.ts';
import { inWriteTransaction } from '../../warehouse/write-transaction.ts';

/*
 * What the portal's settings and audit screens read and change beyond the services the CLI
 * already has. Each function takes the acting user and checks, next to the data, that the
 * role may do it: a route's role check is the first line, this is the second.
 */

const forbidden = (actor: Actor, what: string) =>
  new HubError('forbidden', 403, `${actor.name} (${actor.role}) may not ${what}`);

/** A super admin manages every client; an entity admin only its own entity's. */
export async function fetchManagedClients(ctx: AppContext, actor: Actor): Promise<ClientRecord[]> {
  if (actor.role === 'super-admin') return fetchClients(ctx);
  if (actor.role === 'entity-admin' && actor.entity !== null)
    return fetchClients(ctx, { entity: actor.entity });
  throw forbidden(actor, 'manage API clients');
}

export async function assertMayManageClient(
  ctx: AppContext,
  actor: Actor,
  clientId: string,
): Promise<ClientRecord> {
  const client = await fetchClient(ctx, clientId);
  if (client === null) throw new HubError('unknown_client', 404, `no API client ${JSON.stringify(clientId)}`);
  if (actor.role === 'super-admin' || (actor.role === 'entity-admin' && actor.entity === client.entity))
    return client;
  throw forbidden(actor, `manage ${clientId}`);
}

export function assertMayCreateClientFor(actor: Actor, entity: string): void {
  if (actor.role === 'super-admin') return;
  if (actor.role === 'entity-admin' && actor.entity === entity.toUpperCase()) return;
  throw forbidden(actor, `create clients for ${entity}`);
}

/** Enables a disabled client, or changes its limits; tokens already issued keep their rights until they expire. */
export async function updateClientSettings(
  ctx: AppContext,
  actor: Actor,
  clientId: string,
  change: {
    status?: 'active' | 'disabled';
    ratePerMinute?: number;
    ratePerDay?: number;
    allowedIps?: string[];
  },
): Promise<void> {
  const client = await assertMayManageClient(ctx, actor, clientId);
  const values: Record<string, unknown> = {};
  if (change.status !== undefined) values.status = change.status;
  for (const [field, value] of [
    ['rate_per_minute', change.ratePerMinute],
    ['rate_per_day', change.ratePerDay],
  ] as const) {
    if (value === undefined) continue;
    if (!Number.isSafeInteger(value) || value < 1)
      throw invalidRequest(`${field}: must be a positive integer`, { field });
    values[field] = value;
  }
  if (change.allowedIps !== undefined) {
    const bad = change.allowedIps.filter((ip) => isIP(ip) === 0);
    if (bad.length > 0)
      throw invalidRequest(`allowed_ips: not an IP address: ${bad.join(', ')}`, { field: 'allowed_ips' });
    values.allowed_ips =
      change.allowedIps.length > 0 ? JSON.stringify([...new Set(change.allowedIps)]) : null;
  }
  if (Object.keys(values).length === 0) return;
  await inWriteTransaction(ctx.knex, async (trx) => {
    await trx('hub_clients').where({ client_id: clientId }).update(values);
    const action =
      change.status === 'active'
        ? 'client.enable'
        : change.status === 'disabled'
          ? 'client.disable'
          : 'client.update';
    await recordAudit(trx, ctx.clock, {
      actor: actor.name,
      entity: client.entity,
      action,
      target: clientId,
      details: values,
    });
  });
}

export interface EntityOverview {
  code: string;
  label: Label;
  tables: number;
  users: number;
  clients: number;
  queries: number;
}

export async function fetchEntityOverview(ctx: AppContext): Promise<EntityOverview[]> {
  const catalog = await fetchCatalog(ctx.knex);
  const countBy = async (table: string) =>
    new Map(
      (
        await ctx
          .knex(table)
          .groupBy('entity')
          .select<Array<{ entity: string; n: number | string }>>('entity', ctx.knex.raw('count(*) as n'))
      ).map((r) => [r.entity, Number(r.n)]),
    );
  const [users, clients, queries] = [
    await countBy('hub_users'),
    await countBy('hub_clients'),
    await countBy('hub_queries'),
  ];
  return (await fetchEntities(ctx.knex)).map((e) => ({
    ...e,
    tables: catalog.filter((t) => t.entity === e.code).length,
    users: users.get(e.code) ?? 0,
    clients: clients.get(e.code) ?? 0,
    queries: queries.get(e.code) ?? 0,
  }));
}

const ENTITY_CODE = /^[A-Z][A-Z0-9_]{0,15}$/;

/** Registers a consuming entity (custodians come from their connectors' definitions). */
export async function createEntity(
  ctx: AppContext,
  actor: Actor,
  input: { code: string; labelEn: string; labelAr: string },
): Promise<void> {
  if (actor.role !== 'super-admin') throw forbidden(actor, 'register entities');
  const code = input.code.trim().toUpperCase();
  const fields: string[] = [];
  if (!ENTITY_CODE.test(code)) fields.push('code');
  if (input.labelEn.trim() === '' || input.labelEn.length > 200) fields.push('label_en');
  if (input.labelAr.trim() === '' || input.labelAr.length > 200) fields.push('label_ar');
  if (fields.length > 0) throw invalidRequest(`invalid entity: ${fields.join(', ')}`, { fields });
  await inWriteTransaction(ctx.knex, async (trx) => {
    if ((await trx('hub_entities').where({ code }).first('code')) !== undefined)
      throw new HubError('entity_exists', 409, `entity ${code} already exists`);
    await trx('hub_entities').insert({
      code,
      label_en: input.labelEn.trim(),
      label_ar: input.labelAr.trim(),
    });
    await recordAudit(trx, ctx.clock, {
      actor: actor.name,
      entity: code,
      action: 'entity.create',
      target: code,
    });
  });
}

/** A super admin sees every connector; a custodian its own entity's. */
export async function fetchManagedConnectors(ctx: AppContext, actor: Actor): Promise<ConnectorOverview[]> {
  const { connectors: all } = await fetchConnectorOverview(ctx);
  if (actor.role === 'super-admin') return all;
  if (actor.role === 'custodian') return all.filter((c) => c.entity === actor.entity);
  throw forbidden(actor, 'see connectors');
}

export async function assertMayRunConnector(
  ctx: AppContext,
  actor: Actor,
  name: string,
): Promise<ConnectorOverview> {
  const connector = (await fetchManagedConnectors(ctx, actor)).find((c) => c.name === name);
  if (connector === undefined)
    throw new HubError('not_found', 404, `no connector named ${JSON.stringify(name)} for ${actor.name}`);
  return connector;
}

export interface AuditFilter {
  actor?: string;
  entity?: string;
  action?: string;
  from?: string;
  to?: string;
}

/** An event as the portal lists it: without the chain's digests, and with the id as a number. */
export interface AuditEntry extends Omit<ChainedFields, 'subjects_hash'> {
  id: number;
}

export const AUDIT_PAGE_SIZE = 50;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
function isRealDate(text: string): boolean {
  const day = new Date(`${text}T00:00:00.000Z`);
  return DATE.test(text) && !Number.isNaN(day.getTime()) && day.toISOString().slice(0, 10) === text;
}

/**
 * Whose events the actor may read: a super admin the whole log; a custodian or an entity admin
 * the events about its own entity (see whereAboutEntity), whatever filter the page sends.
 */
async function fetchAuditScope(ctx: AppContext, actor: Actor): Promise<AuditScope | null> {
  if (actor.role === 'super-admin') return null;
  if ((actor.role === 'custodian' || actor.role === 'entity-admin') && actor.entity !== null) {
    const tables = (await fetchCatalog(ctx.knex)).filter((t) => t.entity === actor.entity).map((t) => t.name);
    return { entity: actor.entity, tables };
  }
  throw forbidden(actor, 'read the audit log');
}

/**
 * Verifying walks the whole chain, every entity's events included, and a break is reported by
 * row: the hub operator's task, not a custodian's.
 */
function assertChainVerifier(actor: Actor): void {
  if (actor.role !== 'super-admin') throw forbidden(actor, 'verify the audit chain');
}

function buildAuditQuery(ctx: AppContext, scope: AuditScope | null, filter: AuditFilter) {
  const query = ctx.knex('hub_audit');
  if (scope !== null) whereAboutEntity(query, scope);
  if (filter.actor) query.where('actor', filter.actor);
  if (filter.entity) query.where('entity', filter.entity.toUpperCase());
  if (filter.action) query.where('action', filter.action);
  for (const [field, value] of [
    ['from', filter.from],
    ['to', filter.to],
  ] as const) {
    if (value && !isRealDate(value))
      throw invalidRequest(`${field}: must be a date written YYYY-MM-DD`, { field });
  }
  if (filter.from) query.where('at', '>=', `${filter.from}T00:00:00.000Z`);
  if (filter.to) query.where('at', '<=', `${filter.to}T23:59:59.999Z`);
  return query;
}

/** Newest first, one page, and whether an older page exists. */
export async function searchAudit(
  ctx: AppContext,
  actor: Actor,
  filter: AuditFilter,
  page: number,
): Promise<{ rows: AuditEntry[]; hasMore: boolean }> {
  const rows = await buildAuditQuery(ctx, await fetchAuditScope(ctx, actor), filter)
    .orderBy('id', 'desc')
    .offset((page - 1) * AUDIT_PAGE_SIZE)
    .limit(AUDIT_PAGE_SIZE + 1)
    .select<AuditEntry[]>('id', 'at', 'actor', 'entity', 'action', 'target', 'details');
  return {
    rows: rows.slice(0, AUDIT_PAGE_SIZE).map((r) => ({ ...r, id: Number(r.id) })),
    hasMore: rows.length > AUDIT_PAGE_SIZE,
  };
}

const CSV_EXPORT_LIMIT = 100_000;

export async function exportAuditCsv(ctx: AppContext, actor: Actor, filter: AuditFilter): Promise<string> {
  const rows = await buildAuditQuery(ctx, await fetchAuditScope(ctx, actor), filter)
    .orderBy('id', 'desc')
    .limit(CSV_EXPORT_LIMIT)
    .select<AuditEntry[]>('id', 'at', 'actor', 'entity', 'action', 'target', 'details');
  return stringify(
    rows.map((r) => [r.id, r.at, r.actor, r.entity ?? '', r.action, r.target ?? '', r.details]),
    { header: true, columns: ['id', 'at', 'actor', 'entity', 'action', 'target', 'details'] },
  );
}

/**
 * What `hub audit verify` checks, from the portal: the hash chain, the who-read index against the
 * record, and the chain against the latest signed checkpoint. The check is itself audited, with
 * what it found.
 */
export async function verifyAuditLog(ctx: AppContext, actor: Actor): Promise<AuditLogReport> {
  assertChainVerifier(actor);
  const report = await verifyWholeAuditLog(ctx);
  await ctx.audit.append({
    actor: actor.name,
    entity: actor.entity,
    action: 'audit.verify',
    details: {
      ok: report.problems.length === 0,
      rows: report.rows,
      checkpoint: report.checkpoint === null ? null : path.basename(report.checkpoint.file),
      problems: report.problems,
    },
  });
  return report;
}

/**
 * Who read this person's data (for a custodian or an entity admin, the reads about its entity);
 * asking is itself audited, since the answer is about a person.
 */
export async function fetchPersonReaders(
  ctx: AppContext,
  actor: Actor,
  nationalId: string,
): Promise<WhoReadRow[]> {
  const scope = await fetchAuditScope(ctx, actor);
  if (!/^[0-9A-Za-z-]{1,32}$/.test(nationalId))
    throw invalidRequest('national_id: 1 to 32 letters or digits', { field: 'national_id' });
  const rows = await fetchWhoRead(ctx.knex, nationalId, scope === null ? {} : { scope });
  await ctx.audit.append({
    actor: actor.name,
    entity: actor.entity,
    action: 'audit.who_read',
    target: nationalId,
  });
  return rows;
}
