import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  hash as oneShotHash,
  timingSafeEqual,
} from 'node:crypto';
import { z } from 'zod';
import type { Keyring } from '../../warehouse/keyring/keyring.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import type { BoundParams } from '../../warehouse/query/bind-params.ts';
import type { KeysetPosition } from '../../warehouse/query/compile-query.ts';
import type { QueryDefinition } from '../../warehouse/query/query-definition.ts';

/** The keyring purpose of `next` tokens: a subkey used for nothing else. */
export const PAGE_TOKEN_KEY_PURPOSE = 'query-page-token';

/** What a token is good for: one entity's run of one version of one query with the same parameters. */
export interface PageTokenBinding {
  /** The authenticated data every token of this run carries, built once per request. */
  aad: Buffer;
}

const IV_BYTES = 12;
const TAG_BYTES = 16;
const TOKEN_PATTERN = /^([a-z0-9]{12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22,5000})$/;

const keyValue = z.union([z.string(), z.number(), z.boolean(), z.null()]);
const position = z
  .object({
    order: z.string(),
    values: z.array(keyValue).nullable(),
    seen: z.number().int().min(0),
    ties: z.number().int().min(0),
    page: z.number().int().min(2),
  })
  .strict();

/** JSON with its object keys sorted, so equal values give equal text. */
function stringifySorted(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stringifySorted).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stringifySorted(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

// One-shot: the parameters are hashed at every run of a query, and a Hash object costs more than the digest.
const hashSorted = (value: unknown) => oneShotHash('sha256', stringifySorted(value), 'base64url');

/** A stored definition is frozen and shared by every run of its query: hashed once. */
const definitionHashes = new WeakMap<QueryDefinition, string>();

function hashDefinition(def: QueryDefinition): string {
  if (!Object.isFrozen(def)) return hashSorted(def);
  let hash = definitionHashes.get(def);
  if (hash === undefined) definitionHashes.set(def, (hash = hashSorted(def)));
  return hash;
}

/** The binding as authenticated data: the definition and parameters by hash, so a re-saved query drops old tokens. */
export function buildPageTokenBinding(input: {
  entity: string;
  query: string;
  definition: QueryDefinition;
  params: BoundParams;
}): PageTokenBinding {
  const parts = [
    'registry-hub next v1',
    input.entity,
    input.query,
    hashDefinition(input.definition),
    hashSorted(input.params),
  ];
  return { aad: Buffer.from(parts.join('\0')) };
}

/** The subkey splits in two: AES-256-GCM encrypts, HMAC-SHA-256 derives the nonce. */
function splitKey(key: Buffer): { cipherKey: Buffer; nonceKey: Buffer } {
  return { cipherKey: key.subarray(0, 32), nonceKey: key.subarray(32, 64) };
}

const invalidToken = () =>
  new HubError(
    'invalid_request',
    400,
    'next: not a token this query issued for these parameters (altered, from another query or other parameters, or signed with a removed key); start again from page 1',
  );

/**
 * Seals where the next page starts into an opaque token. It is encrypted (the sort key values it
 * holds are not for reading or editing) and authenticated together with the binding, so a token
 * altered, made by another entity, or sent to another query or with other parameters does not
 * open. The nonce is an HMAC of the content (deterministic encryption, as in SIV): the same
 * position of the same run always gives the same token, so the token itself can say nothing
 * beyond the readable values that decided it.
 */
export function sealPageToken(keyring: Keyring, binding: PageTokenBinding, at: KeysetPosition): string {
  const { kid, key } = keyring.deriveSubkey(PAGE_TOKEN_KEY_PURPOSE, 64);
  const { cipherKey, nonceKey } = splitKey(key);
  const { aad } = binding;
  const plain = Buffer.from(stringifySorted(at));
  const iv = createHmac('sha256', nonceKey)
    .update(aad)
    .update('\0')
    .update(plain)
    .digest()
    .subarray(0, IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', cipherKey, iv);
  cipher.setAAD(aad);
  const sealed = Buffer.concat([cipher.update(plain), cipher.final(), cipher.getAuthTag()]);
  return `${kid}.${iv.toString('base64url')}.${sealed.toString('base64url')}`;
}

/** The position a token holds; 400 when it does not open under this binding. */
export function openPageToken(keyring: Keyring, binding: PageTokenBinding, token: string): KeysetPosition {
  const match = TOKEN_PATTERN.exec(token);
  if (match === null) throw invalidToken();
  const [, kid = '', ivText = '', body = ''] = match;
  const subkey = keyring.findSubkey(PAGE_TOKEN_KEY_PURPOSE, kid, 64);
  if (subkey === null) throw invalidToken();
  const { cipherKey, nonceKey } = splitKey(subkey.key);
  const { aad } = binding;
  const iv = Buffer.from(ivText, 'base64url');
  const data = Buffer.from(body, 'base64url');
  // Base64 text with other trailing bits decodes to the same bytes: only the canonical text is the token.
  if (iv.length !== IV_BYTES || data.length <= TAG_BYTES || data.toString('base64url') !== body)
    throw invalidToken();
  let plain: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', cipherKey, iv);
    decipher.setAAD(aad);
    decipher.setAuthTag(data.subarray(data.length - TAG_BYTES));
    plain = Buffer.concat([decipher.update(data.subarray(0, data.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw invalidToken();
  }
  const expectedIv = createHmac('sha256', nonceKey)
    .update(aad)
    .update('\0')
    .update(plain)
    .digest()
    .subarray(0, IV_BYTES);
  if (!timingSafeEqual(iv, expectedIv)) throw invalidToken();
  let parsed: unknown;
  try {
    parsed = JSON.parse(plain.toString('utf8'));
  } catch {
    throw invalidToken();
  }
  const result = position.safeParse(parsed);
  if (!result.success) throw invalidToken();
  return result.data;
}
