import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Keyring } from '../../warehouse/keyring/keyring.ts';
import { verifySecret } from './password-hash.ts';

export const CLIENT_SECRET_PURPOSE = 'client-secret';
const STORED_PATTERN = /^hmac-sha256\$([a-z0-9]{12})\$([A-Za-z0-9_-]{43})$/;

export interface ClientSecretCheck {
  matches: boolean;
  /** The secret matched, but its hash is an older kind or under an older key: store hashClientSecret's again. */
  needsRehash: boolean;
}

const computeMac = (key: Buffer, secret: string) => createHmac('sha256', key).update(secret, 'utf8').digest();

/**
 * `hmac-sha256$<kid>$<mac>`. Client secrets are 256 random bits, so no guessing could find one
 * and a slow hash buys nothing; it would only let every bad token request cost a CPU-second.
 * The HMAC is keyed by a subkey outside the warehouse, so the stored value is useless without it.
 */
export function hashClientSecret(keyring: Keyring, secret: string): string {
  const { kid, key } = keyring.deriveSubkey(CLIENT_SECRET_PURPOSE);
  return `hmac-sha256$${kid}$${computeMac(key, secret).toString('base64url')}`;
}

/**
 * Whether the secret matches the stored hash. An unknown client (no stored hash) costs one HMAC
 * like a known one. Hashes from before HMAC (scrypt) still verify, slowly, until rehashed.
 */
export async function verifyClientSecret(
  keyring: Keyring,
  secret: string,
  stored: string | undefined,
): Promise<ClientSecretCheck> {
  const match = STORED_PATTERN.exec(stored ?? '');
  if (match === null) {
    if (stored?.startsWith('scrypt$') === true) {
      const matches = await verifySecret(secret, stored);
      return { matches, needsRehash: matches };
    }
    computeMac(keyring.deriveSubkey(CLIENT_SECRET_PURPOSE).key, secret);
    return { matches: false, needsRehash: false };
  }
  const [, kid = '', mac = ''] = match;
  const subkey = keyring.findSubkey(CLIENT_SECRET_PURPOSE, kid);
  if (subkey === null) return { matches: false, needsRehash: false };
  const matches = timingSafeEqual(computeMac(subkey.key, secret), Buffer.from(mac, 'base64url'));
  return { matches, needsRehash: matches && kid !== keyring.currentKid() };
}

/** The kid a stored hash was made under; null for scrypt hashes. */
export function readClientSecretKid(stored: string): string | null {
  return STORED_PATTERN.exec(stored)?.[1] ?? null;
}
