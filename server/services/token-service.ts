import { createSecretKey, type KeyObject } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { fetchClient, verifyClientCredentials, type ClientRecord } from './client-service.ts';

export const TOKEN_TTL_SECONDS = 900;
const ALGORITHM = 'HS256';
const ISSUER = 'registry-hub';

export interface ApiCaller {
  clientId: string;
  entity: string;
  limits: { perMinute: number; perDay: number };
}

export interface TokenResponse {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

const invalidClient = () => new HubError('invalid_client', 401, 'client authentication failed');
const invalidToken = (why: string) => new HubError('invalid_token', 401, `invalid access token: ${why}`);

/**
 * The signing key is shared by every hub process on the warehouse; read once per process and
 * kept as a KeyObject, since jose would import raw bytes again on every verification.
 */
export class TokenKeys {
  private key: KeyObject | null = null;

  async fetch(ctx: AppContext): Promise<KeyObject> {
    if (this.key === null) {
      const row = await ctx.knex('hub_settings').where({ name: 'token_signing_key' }).first<{ value: string } | undefined>('value');
      if (row === undefined) throw new Error('hub_settings has no token signing key: run hub migrate');
      this.key = createSecretKey(Buffer.from(row.value, 'base64url'));
    }
    return this.key;
  }
}

/** IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d. */
export function normalizeIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

function assertAddressAllowed(client: ClientRecord, ip: string): void {
  if (client.allowed_ips.length > 0 && !client.allowed_ips.includes(ip)) {
    throw new HubError('address_not_allowed', 403, `client ${client.client_id} may not call from ${ip || 'an unknown address'}`, {
      client_id: client.client_id,
      entity: client.entity,
    });
  }
}

export async function issueToken(
  ctx: AppContext,
  keys: TokenKeys,
  input: { clientId: string; clientSecret: string; ip: string },
): Promise<TokenResponse> {
  const client = await verifyClientCredentials(ctx, input.clientId, input.clientSecret);
  if (client === null) {
    await ctx.audit.append({ actor: input.clientId.slice(0, 100), action: 'token.refused', details: { ip: input.ip } });
    throw invalidClient();
  }
  assertAddressAllowed(client, input.ip);
  const nowMs = ctx.clock.now().getTime();
  const issuedAt = Math.floor(nowMs / 1000);
  const token = await new SignJWT({ ent: client.entity, iat_ms: nowMs })
    .setProtectedHeader({ alg: ALGORITHM })
    .setIssuer(ISSUER)
    .setSubject(client.client_id)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + TOKEN_TTL_SECONDS)
    .sign(await keys.fetch(ctx));
  await ctx.audit.append({ actor: client.client_id, entity: client.entity, action: 'token.issue', details: { ip: input.ip } });
  return { access_token: token, token_type: 'Bearer', expires_in: TOKEN_TTL_SECONDS };
}

/**
 * Checks the token and then the client as it is now: a disabled client, a rotated secret or a
 * narrowed address list takes effect on the next request, not when the token expires.
 */
export async function authenticateCaller(ctx: AppContext, keys: TokenKeys, authorization: string | undefined, ip: string): Promise<ApiCaller> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (match === null) throw invalidToken('send Authorization: Bearer <token> from POST /api/v1/token');
  let payload: { sub?: string; iat_ms?: unknown };
  try {
    ({ payload } = await jwtVerify(match[1]!, await keys.fetch(ctx), {
      algorithms: [ALGORITHM],
      issuer: ISSUER,
      currentDate: ctx.clock.now(),
    }));
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw invalidToken(code === 'ERR_JWT_EXPIRED' ? 'expired' : 'signature or claims do not verify');
  }
  const client = payload.sub === undefined ? null : await fetchClient(ctx, payload.sub);
  if (client === null || client.status !== 'active') throw invalidToken('the client is disabled or unknown');
  if (typeof payload.iat_ms !== 'number' || payload.iat_ms < Date.parse(client.secret_rotated_at)) {
    throw invalidToken('issued before the client secret was rotated');
  }
  assertAddressAllowed(client, ip);
  return { clientId: client.client_id, entity: client.entity, limits: { perMinute: client.rate_per_minute, perDay: client.rate_per_day } };
}
