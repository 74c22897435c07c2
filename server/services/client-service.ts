import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import type { Knex } from 'knex';
import { recordAudit } from '../../warehouse/audit/record-audit.ts';
import { isoNow } from '../../warehouse/core/clock.ts';
import { HubError, invalidRequest } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { hashClientSecret, readClientSecretKid, verifyClientSecret } from './client-secret-hash.ts';
import { inWriteTransaction } from '../../warehouse/write-transaction.ts';

export interface ClientInput {
  entity: string;
  name?: string;
  ratePerMinute?: number;
  ratePerDay?: number;
  /** Source addresses the client may call from; empty or absent: any address. */
  allowedIps?: string[];
}

export interface ClientCredentials {
  client_id: string;
  client_secret: string;
}

export interface ClientRecord {
  client_id: string;
  entity: string;
  name: string;
  status: 'active' | 'disabled';
  /** Empty: any address. */
  allowed_ips: string[];
  rate_per_minute: number;
  rate_per_day: number;
  created_at: string;
  /** Tokens issued before this instant must be refused. */
  secret_rotated_at: string;
}

interface ClientRow extends Omit<ClientRecord, 'allowed_ips'> {
  allowed_ips: string | null;
  secret_hash: string;
  /** The DCI signing key (server/dci/client-keys.ts); not part of the client record. */
  dci_public_key?: string | null;
}

const DEFAULT_RATE_PER_MINUTE = 120;
const DEFAULT_RATE_PER_DAY = 50_000;
const SECRET_BYTES = 32;

const buildSecret = () => randomBytes(SECRET_BYTES).toString('base64url');

/** 404 `unknown_entity` unless the catalog knows the entity; returns its code as stored. */
export async function assertEntityExists(knex: Knex | Knex.Transaction, entity: string): Promise<string> {
  const code = entity.trim().toUpperCase();
  const row = await knex('hub_entities').where({ code }).first<{ code: string } | undefined>('code');
  if (row === undefined)
    throw new HubError(
      'unknown_entity',
      404,
      `unknown entity ${JSON.stringify(entity)}: entities come from the catalog (run hub migrate or hub demo)`,
    );
  return row.code;
}

export async function createClient(
  ctx: AppContext,
  input: ClientInput,
  actor: string,
): Promise<ClientCredentials> {
  const ratePerMinute = assertPositiveInteger(
    'rate_per_minute',
    input.ratePerMinute ?? DEFAULT_RATE_PER_MINUTE,
  );
  const ratePerDay = assertPositiveInteger('rate_per_day', input.ratePerDay ?? DEFAULT_RATE_PER_DAY);
  const allowedIps = assertIpAddresses(input.allowedIps ?? []);
  const secret = buildSecret();
  const secretHash = hashClientSecret(ctx.keyring, secret);
  return inWriteTransaction(ctx.knex, async (trx) => {
    const entity = await assertEntityExists(trx, input.entity);
    const clientId = await buildUnusedClientId(trx, entity);
    const name = input.name?.trim() || `${entity} client ${clientId}`;
    if (name.length > 200) throw invalidRequest('name: at most 200 characters');
    const now = isoNow(ctx.clock);
    await trx('hub_clients').insert({
      client_id: clientId,
      entity,
      name,
      secret_hash: secretHash,
      status: 'active',
      allowed_ips: allowedIps.length > 0 ? JSON.stringify(allowedIps) : null,
      rate_per_minute: ratePerMinute,
      rate_per_day: ratePerDay,
      created_at: now,
      secret_rotated_at: now,
    });
    await recordAudit(trx, ctx.clock, {
      actor,
      entity,
      action: 'client.create',
      target: clientId,
      details: { name, rate_per_minute: ratePerMinute, rate_per_day: ratePerDay, allowed_ips: allowedIps },
    });
    return { client_id: clientId, client_secret: secret };
  });
}

/** Plain SQL that every dialect reads alike; the client record's columns, without the secret hash. */
const CLIENT_SQL =
  'SELECT client_id, entity, name, status, allowed_ips, rate_per_minute, rate_per_day, created_at, secret_rotated_at FROM hub_clients WHERE client_id = ?';

/**
 * The client as it is now. Every API request asks, so that a disable, a rotation or a narrowed
 * address list counts from the next request: one primary-key read, prepared once, through a
 * reader so that it never queues behind a load's write. It is not cached under a version: such
 * a version would have to be bumped by every writer of hub_clients and read on every request,
 * and reading it costs what reading the row costs.
 */
export async function fetchClient(ctx: AppContext, clientId: string): Promise<ClientRecord | null> {
  const row = await ctx.reads.first<ClientRow>(CLIENT_SQL, [clientId]);
  return row === undefined ? null : mapClientRow(row);
}

export async function fetchClients(
  ctx: AppContext,
  options: { entity?: string } = {},
): Promise<ClientRecord[]> {
  const rows = await ctx
    .knex('hub_clients')
    .where(options.entity === undefined ? {} : { entity: options.entity.toUpperCase() })
    .orderBy(['entity', 'client_id'])
    .select<ClientRow[]>('*');
  return rows.map(mapClientRow);
}

export type ClientCheck =
  { ok: true; client: ClientRecord } | { ok: false; reason: 'unknown_client' | 'bad_secret' | 'disabled' };

/**
 * The client when the secret matches and the client is active. The reason for a refusal is for
 * the audit log only: callers answer every refusal alike, so that client ids cannot be probed.
 */
export async function verifyClientCredentials(
  ctx: AppContext,
  clientId: string,
  secret: string,
): Promise<ClientCheck> {
  const row = await ctx.knex('hub_clients').where({ client_id: clientId }).first<ClientRow | undefined>();
  const check = await verifyClientSecret(ctx.keyring, secret, row?.secret_hash);
  if (row === undefined) return { ok: false, reason: 'unknown_client' };
  if (!check.matches) return { ok: false, reason: 'bad_secret' };
  if (row.status !== 'active') return { ok: false, reason: 'disabled' };
  // Moves the hash to HMAC under the current key while the secret is at hand; only if nobody
  // rotated the secret meanwhile.
  if (check.needsRehash) {
    await ctx
      .knex('hub_clients')
      .where({ client_id: clientId, secret_hash: row.secret_hash })
      .update({ secret_hash: hashClientSecret(ctx.keyring, secret) });
  }
  return { ok: true, client: mapClientRow(row) };
}

/** Which key each client's secret hash was made under ('scrypt' for hashes from before HMAC). */
export async function fetchClientSecretKids(
  ctx: AppContext,
): Promise<Array<{ client_id: string; kid: string }>> {
  const rows = await ctx
    .knex('hub_clients')
    .orderBy('client_id')
    .select<Array<{ client_id: string; secret_hash: string }>>('client_id', 'secret_hash');
  return rows.map((r) => ({ client_id: r.client_id, kid: readClientSecretKid(r.secret_hash) ?? 'scrypt' }));
}

/** A new secret; the old one stops working at once, and so must tokens issued before secret_rotated_at. */
export async function rotateClientSecret(
  ctx: AppContext,
  clientId: string,
  actor: string,
): Promise<ClientCredentials> {
  const secret = buildSecret();
  const secretHash = hashClientSecret(ctx.keyring, secret);
  await inWriteTransaction(ctx.knex, async (trx) => {
    const client = await assertClientExists(trx, clientId);
    await trx('hub_clients')
      .where({ client_id: clientId })
      .update({ secret_hash: secretHash, secret_rotated_at: isoNow(ctx.clock) });
    await recordAudit(trx, ctx.clock, {
      actor,
      entity: client.entity,
      action: 'client.rotate',
      target: clientId,
    });
  });
  return { client_id: clientId, client_secret: secret };
}

export async function disableClient(ctx: AppContext, clientId: string, actor: string): Promise<void> {
  await inWriteTransaction(ctx.knex, async (trx) => {
    const client = await assertClientExists(trx, clientId);
    await trx('hub_clients').where({ client_id: clientId }).update({ status: 'disabled' });
    await recordAudit(trx, ctx.clock, {
      actor,
      entity: client.entity,
      action: 'client.disable',
      target: clientId,
    });
  });
}

async function assertClientExists(trx: Knex.Transaction, clientId: string): Promise<{ entity: string }> {
  const row = await trx('hub_clients')
    .where({ client_id: clientId })
    .first<{ entity: string } | undefined>('entity');
  if (row === undefined)
    throw new HubError('unknown_client', 404, `no API client ${JSON.stringify(clientId)}`);
  return row;
}

async function buildUnusedClientId(trx: Knex.Transaction, entity: string): Promise<string> {
  for (;;) {
    const clientId = `${entity.toLowerCase()}-${randomBytes(4).toString('hex')}`;
    const taken = await trx('hub_clients')
      .where({ client_id: clientId })
      .first<{ client_id: string } | undefined>('client_id');
    if (taken === undefined) return clientId;
  }
}

function mapClientRow({
  secret_hash: _secretHash,
  dci_public_key: _dciPublicKey,
  allowed_ips,
  ...row
}: ClientRow): ClientRecord {
  return {
    ...row,
    allowed_ips: allowed_ips === null ? [] : (JSON.parse(allowed_ips) as string[]),
    rate_per_minute: Number(row.rate_per_minute),
    rate_per_day: Number(row.rate_per_day),
  };
}

function assertPositiveInteger(field: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1)
    throw invalidRequest(`${field}: must be a positive integer`, { field });
  return value;
}

function assertIpAddresses(ips: string[]): string[] {
  const bad = ips.filter((ip) => isIP(ip) === 0);
  if (bad.length > 0)
    throw invalidRequest(`allowed_ips: not an IP address: ${bad.join(', ')}`, { field: 'allowed_ips' });
  return [...new Set(ips)];
}
