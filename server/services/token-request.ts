import { HubError } from '../../warehouse/core/errors.ts';

/** A token request as it arrived: the parsed body (JSON or form) and the Authorization header. */
export interface RawTokenRequest {
  body: unknown;
  authorization: string | undefined;
}

export interface TokenRequest {
  clientId: string;
  clientSecret: string;
  /** How the client authenticated (RFC 6749 §2.3.1): HTTP Basic or the body. */
  method: 'basic' | 'body';
}

interface BasicCredentials {
  clientId: string;
  clientSecret: string;
}

const invalidRequest = (message: string) => new HubError('invalid_request', 400, message);
const invalidClient = (message: string) => new HubError('invalid_client', 401, message);

const BASIC_PATTERN = /^Basic\s+([A-Za-z0-9+/]+={0,2})\s*$/i;
const FIELD_LIMITS = { grant_type: 100, client_id: 100, client_secret: 500 } as const;
type Field = keyof typeof FIELD_LIMITS;

/** The client id a request names, if any, before anything is checked: what failures are counted against. */
export function readClaimedClientId(raw: RawTokenRequest): string | null {
  try {
    const basic = readBasicCredentials(raw.authorization);
    if (basic !== null) return basic.clientId;
  } catch {
    // A malformed header names no client; the request fails later as invalid_request.
  }
  const id = readBody(raw.body).client_id;
  return typeof id === 'string' && id !== '' ? id : null;
}

/**
 * The client_credentials request of RFC 6749 §4.4, or the §5.2 error: `invalid_request` (400)
 * for a malformed or repeated parameter or two authentication methods at once,
 * `unsupported_grant_type` (400), `invalid_client` (401) when no client authentication came.
 */
export function parseTokenRequest(raw: RawTokenRequest): TokenRequest {
  const basic = readBasicCredentials(raw.authorization);
  const body = readBody(raw.body);
  const field = (name: Field): string | undefined => readField(body, name);
  const grantType = field('grant_type');
  const bodyId = field('client_id');
  const bodySecret = field('client_secret');
  if (grantType === undefined)
    throw invalidRequest('grant_type: required; this endpoint issues client_credentials tokens');
  if (grantType !== 'client_credentials') {
    throw new HubError(
      'unsupported_grant_type',
      400,
      `grant_type: ${JSON.stringify(grantType)} is not supported; use client_credentials`,
    );
  }
  if (basic !== null) {
    if (bodySecret !== undefined) {
      throw invalidRequest(
        'use one client authentication method: HTTP Basic, or client_id and client_secret in the body, not both',
      );
    }
    if (bodyId !== undefined && bodyId !== basic.clientId)
      throw invalidRequest('client_id: differs from the client id in HTTP Basic');
    return { ...basic, method: 'basic' };
  }
  if (bodyId === undefined && bodySecret === undefined) {
    throw invalidClient('no client authentication: send HTTP Basic, or client_id and client_secret');
  }
  if (bodyId === undefined) throw invalidClient('client_id: required with client_secret');
  if (bodySecret === undefined) throw invalidClient('client_secret: required with client_id');
  return { clientId: bodyId, clientSecret: bodySecret, method: 'body' };
}

function readBody(body: unknown): Record<string, unknown> {
  return typeof body === 'object' && body !== null && !Array.isArray(body)
    ? (body as Record<string, unknown>)
    : {};
}

function readField(body: Record<string, unknown>, name: Field): string | undefined {
  if (!Object.hasOwn(body, name)) return undefined;
  const value = body[name];
  if (typeof value !== 'string') throw invalidRequest(`${name}: must be given once, as text`);
  if (value === '') throw invalidRequest(`${name}: must not be empty`);
  if (value.length > FIELD_LIMITS[name])
    throw invalidRequest(`${name}: at most ${FIELD_LIMITS[name]} characters`);
  // PostgreSQL refuses text holding U+0000; the id is looked up, so it would fail as a 500.
  if (value.includes('\u0000')) throw invalidRequest(`${name}: must not contain a NUL character`);
  return value;
}

/**
 * RFC 6749 §2.3.1: the id and the secret are form-encoded, joined by a colon and sent in
 * base64. Any other scheme in the header is not client authentication and is ignored.
 */
function readBasicCredentials(authorization: string | undefined): BasicCredentials | null {
  if (authorization === undefined || !/^Basic\b/i.test(authorization.trim())) return null;
  const match = BASIC_PATTERN.exec(authorization.trim());
  const decoded = match === null ? '' : Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 1) throw invalidRequest('Authorization: Basic must carry base64 of client_id:client_secret');
  const clientId = decodeFormComponent(decoded.slice(0, colon));
  const clientSecret = decodeFormComponent(decoded.slice(colon + 1));
  const checked = { client_id: clientId, client_secret: clientSecret };
  for (const name of ['client_id', 'client_secret'] as const) readField(checked, name);
  return { clientId, clientSecret };
}

function decodeFormComponent(text: string): string {
  try {
    return decodeURIComponent(text.replaceAll('+', ' '));
  } catch {
    throw invalidRequest('Authorization: Basic credentials are not valid form encoding');
  }
}
