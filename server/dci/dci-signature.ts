import { createHash, sign, verify, type KeyObject } from 'node:crypto';

/** How long a signature the hub makes stays valid. */
const SIGNATURE_TTL_SECONDS = 300;
/** Clock difference tolerated between the sender and the hub. */
const CLOCK_SKEW_SECONDS = 60;

export interface SignatureParts {
  namespace: string;
  kidId: string;
  algorithm: string;
  created: number;
  expires: number;
  headers: string;
  signature: string;
}

/**
 * The DCI digest: BLAKE2b-512 over the JSON text of {header, message}, as the envelope is sent
 * (JSON.parse keeps key order, so the receiver rebuilds the same text).
 */
export function buildDigest(header: unknown, message: unknown): string {
  const text = JSON.stringify({ header, message: message ?? null });
  return createHash('blake2b512').update(text, 'utf8').digest('base64');
}

function buildSigningString(created: number, expires: number, digest: string): string {
  return `(created): ${created}\n(expires): ${expires}\ndigest: BLAKE-512=${digest}`;
}

/** A signature in the DCI format: Signature: namespace="dci", kidId="{sender}|{kid}|ed25519", ... */
export function buildSignature(input: {
  key: KeyObject;
  kid: string;
  senderId: string;
  header: unknown;
  message: unknown;
  now: Date;
}): string {
  const created = Math.floor(input.now.getTime() / 1000);
  const expires = created + SIGNATURE_TTL_SECONDS;
  const signingString = buildSigningString(created, expires, buildDigest(input.header, input.message));
  const signature = sign(null, Buffer.from(signingString, 'utf8'), input.key).toString('base64');
  return (
    `Signature: namespace="dci", kidId="${input.senderId}|${input.kid}|ed25519", algorithm="ed25519", ` +
    `created="${created}", expires="${expires}", headers="(created) (expires) digest", signature="${signature}"`
  );
}

export function parseSignature(text: string): SignatureParts | null {
  const body = text.replace(/^\s*Signature:\s*/i, '');
  const fields = new Map<string, string>();
  for (const match of body.matchAll(/([A-Za-z]+)="([^"]*)"?/g)) fields.set(match[1]!, match[2]!);
  const created = Number(fields.get('created'));
  const expires = Number(fields.get('expires'));
  const signature = fields.get('signature');
  if (signature === undefined || !Number.isSafeInteger(created) || !Number.isSafeInteger(expires))
    return null;
  return {
    namespace: fields.get('namespace') ?? '',
    kidId: fields.get('kidId') ?? '',
    algorithm: (fields.get('algorithm') ?? '').toLowerCase(),
    created,
    expires,
    headers: fields.get('headers') ?? '',
    signature,
  };
}

/** The value of signature="..." (what placeholder settings usually list), or null. */
export function findSignatureValue(text: string): string | null {
  return /signature="([^"]*)"?/.exec(text)?.[1] ?? null;
}

/** Why a signature does not verify against the key, or null when it does. */
export function explainSignatureProblem(input: {
  text: string;
  key: KeyObject;
  header: unknown;
  message: unknown;
  now: Date;
}): string | null {
  const parts = parseSignature(input.text);
  if (parts === null)
    return 'the signature is not in the DCI format (created, expires and signature are required)';
  if (parts.algorithm !== 'ed25519')
    return `algorithm ${JSON.stringify(parts.algorithm)} is not supported (use ed25519)`;
  const now = Math.floor(input.now.getTime() / 1000);
  if (parts.created > now + CLOCK_SKEW_SECONDS) return 'the signature is created in the future';
  if (parts.expires < now - CLOCK_SKEW_SECONDS) return 'the signature has expired';
  const signingString = buildSigningString(
    parts.created,
    parts.expires,
    buildDigest(input.header, input.message),
  );
  let ok: boolean;
  try {
    ok = verify(null, Buffer.from(signingString, 'utf8'), input.key, Buffer.from(parts.signature, 'base64'));
  } catch {
    ok = false;
  }
  return ok ? null : "the signature does not match the message and the sender's registered key";
}
