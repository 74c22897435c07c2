import type { KeyObject } from 'node:crypto';
import { jwtVerify, SignJWT, type JWTHeaderParameters } from 'jose';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { fetchClient, verifyClientCredentials, type ClientRecord } from './client-service.ts';
import { parseTokenRequest, readClaimedClientId, type RawTokenRequest } from './token-request.ts';
import { assertTokenRequestAllowed, countTokenFailure, type TokenRequester } from './token-throttle.ts';
import type { VerifiedToken } from './verified-tokens.ts';

export const TOKEN_TTL_SECONDS = 900;
/** The keyring purpose whose subkey signs access tokens. */
export const TOKEN_KEY_PURPOSE = 'api-token';
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

/** One answer for an unknown client, a wrong secret and a disabled client, so ids cannot be probed. */
const invalidClient = (reason: string) =>
  new HubError('invalid_client', 401, 'client authentication failed', { reason });
const invalidToken = (why: string) => new HubError('invalid_token', 401, `invalid access token: ${why}`);

class UnknownSigningKey extends Error {}

/** IPv4 clients on a dual-stack socket appear as ::ffff:a.b.c.d. */
export function normalizeIp(ip: string | undefined): string {
  if (ip === undefined) return '';
  return ip.startsWith('::ffff:') ? ip.slice(7) : ip;
}

function assertAddressAllowed(client: ClientRecord, ip: string): void {
  if (client.allowed_ips.length > 0 && !client.allowed_ips.includes(ip)) {
    throw new HubError(
      'address_not_allowed',
      403,
      `client ${client.client_id} may not call from ${ip || 'an unknown address'}`,
      {
        client_id: client.client_id,
        entity: client.entity,
      },
    );
  }
}

/**
 * POST /api/v1/token. The throttle comes first, so a flood of bad requests from one address or
 * against one client id is refused with 429 at the cost of one indexed read, and each failure
 * costs one HMAC, never a slow hash. Every failure is counted and audited as `token.failed`.
 */
export async function issueToken(
  ctx: AppContext,
  input: RawTokenRequest & { ip: string },
): Promise<TokenResponse> {
  const requester: TokenRequester = { ip: input.ip, clientId: readClaimedClientId(input) };
  let client: ClientRecord;
  try {
    await assertTokenRequestAllowed(ctx, requester);
  } catch (err) {
    if (err instanceof HubError) await auditTokenFailure(ctx, requester, err);
    throw err;
  }
  try {
    const request = parseTokenRequest(input);
    const check = await verifyClientCredentials(ctx, request.clientId, request.clientSecret);
    if (!check.ok) throw invalidClient(check.reason);
    assertAddressAllowed(check.client, input.ip);
    client = check.client;
  } catch (err) {
    if (err instanceof HubError && err.status < 500) {
      await countTokenFailure(ctx, requester);
      await auditTokenFailure(ctx, requester, err);
    }
    throw err;
  }
  const nowMs = ctx.clock.now().getTime();
  const issuedAt = Math.floor(nowMs / 1000);
  const { kid, key } = ctx.keyring.deriveSecretKey(TOKEN_KEY_PURPOSE);
  const token = await new SignJWT({ ent: client.entity, iat_ms: nowMs })
    .setProtectedHeader({ alg: ALGORITHM, typ: 'JWT', kid })
    .setIssuer(ISSUER)
    .setSubject(client.client_id)
    .setIssuedAt(issuedAt)
    .setExpirationTime(issuedAt + TOKEN_TTL_SECONDS)
    .sign(key);
  await ctx.audit.append({
    actor: client.client_id,
    entity: client.entity,
    action: 'token.issue',
    details: { ip: input.ip },
  });
  return { access_token: token, token_type: 'Bearer', expires_in: TOKEN_TTL_SECONDS };
}

function auditTokenFailure(ctx: AppContext, requester: TokenRequester, error: HubError): Promise<void> {
  const reason = error.details?.reason;
  return ctx.audit.append({
    actor: (requester.clientId ?? 'unknown').replaceAll('\u0000', '').slice(0, 100) || 'unknown',
    action: 'token.failed',
    details: {
      ip: requester.ip,
      error: error.code,
      status: error.status,
      ...(typeof reason === 'string' ? { reason } : {}),
    },
  });
}

/** Verifies signature and claims, and remembers the token for its next use (see VerifiedTokens). */
async function verifyToken(ctx: AppContext, token: string): Promise<VerifiedToken['payload']> {
  let used: { kid: string; key: KeyObject } | null = null;
  const findKey = (header: JWTHeaderParameters) => {
    const key =
      typeof header.kid === 'string' ? ctx.keyring.findSecretKey(TOKEN_KEY_PURPOSE, header.kid) : null;
    if (key === null) throw new UnknownSigningKey();
    used = { kid: header.kid!, key };
    return key;
  };
  let verified: { payload: VerifiedToken['payload'] & { exp?: number } };
  try {
    verified = await jwtVerify(token, findKey, {
      algorithms: [ALGORITHM],
      issuer: ISSUER,
      currentDate: ctx.clock.now(),
    });
  } catch (err) {
    if (err instanceof UnknownSigningKey)
      throw invalidToken('signed with a key the hub no longer holds or never held');
    const code = (err as { code?: string }).code;
    throw invalidToken(code === 'ERR_JWT_EXPIRED' ? 'expired' : 'signature or claims do not verify');
  }
  const { payload } = verified;
  const key = used as { kid: string; key: KeyObject } | null;
  if (key !== null && typeof payload.exp === 'number')
    ctx.tokens.save(token, { ...key, exp: payload.exp, payload });
  return payload;
}

/**
 * Checks the token and then the client as it is now: a disabled client, a rotated secret or a
 * narrowed address list takes effect on the next request, not when the token expires. A token
 * whose key (`kid`) was removed from the keyring is refused at once. A token verified before is
 * not verified again while its key is unchanged and it has not expired (ctx.tokens); the client
 * is read on every request all the same.
 */
export async function authenticateCaller(
  ctx: AppContext,
  authorization: string | undefined,
  ip: string,
): Promise<ApiCaller> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  if (match === null) throw invalidToken('send Authorization: Bearer <token> from POST /api/v1/token');
  const token = match[1]!;
  const currentKey = (kid: string) => ctx.keyring.findSecretKey(TOKEN_KEY_PURPOSE, kid);
  const nowMs = ctx.clock.now().getTime();
  const payload = ctx.tokens.find(token, currentKey, nowMs)?.payload ?? (await verifyToken(ctx, token));
  const client = payload.sub === undefined ? null : await fetchClient(ctx, payload.sub);
  if (client === null || client.status !== 'active') throw invalidToken('the client is disabled or unknown');
  if (typeof payload.iat_ms !== 'number' || payload.iat_ms < Date.parse(client.secret_rotated_at)) {
    throw invalidToken('issued before the client secret was rotated');
  }
  assertAddressAllowed(client, ip);
  return {
    clientId: client.client_id,
    entity: client.entity,
    limits: { perMinute: client.rate_per_minute, perDay: client.rate_per_day },
  };
}

/**
 * A token request the body parser refused before issueToken could run (malformed JSON): it is
 * throttled, counted and audited like any other failure. Returns the error to answer with.
 */
export async function refuseMalformedTokenRequest(
  ctx: AppContext,
  ip: string,
  error: HubError,
): Promise<HubError> {
  const requester: TokenRequester = { ip, clientId: null };
  try {
    await assertTokenRequestAllowed(ctx, requester);
  } catch (err) {
    if (!(err instanceof HubError)) throw err;
    await auditTokenFailure(ctx, requester, err);
    return err;
  }
  await countTokenFailure(ctx, requester);
  await auditTokenFailure(ctx, requester, error);
  return error;
}
