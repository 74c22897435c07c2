import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

// OWASP's scrypt setting for 32 MiB of memory. The parameters live in each stored string, so
// raising them later only affects new hashes; old ones still verify.
const COST = 2 ** 15;
const BLOCK_SIZE = 8;
const PARALLELIZATION = 3;
const SALT_BYTES = 16;
const KEY_BYTES = 32;
// Checked when there is no stored hash (unknown client or user), so that the answer takes as long
// as for a known one and response times do not tell which names exist.
const STAND_IN_HASH = 'scrypt$32768$8$3$7SIAu4ILr9btd1yH84XpOg$xnR6M71Qp_UM40DCf9zZ-TydjVwahW-d95DoYsfZimk';
const STORED_PATTERN = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([A-Za-z0-9_-]+)\$([A-Za-z0-9_-]+)$/;

function deriveKey(
  secret: string,
  salt: Buffer,
  keyLength: number,
  options: { N: number; r: number; p: number },
): Promise<Buffer> {
  const params: ScryptOptions = { ...options, maxmem: 256 * options.N * options.r };
  return new Promise((resolve, reject) => {
    scrypt(secret, salt, keyLength, params, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** `scrypt$N$r$p$salt$hash`, salt and hash in base64url. */
export async function hashSecret(secret: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await deriveKey(secret, salt, KEY_BYTES, { N: COST, r: BLOCK_SIZE, p: PARALLELIZATION });
  return [
    'scrypt',
    COST,
    BLOCK_SIZE,
    PARALLELIZATION,
    salt.toString('base64url'),
    key.toString('base64url'),
  ].join('$');
}

/** False for a wrong secret, a missing stored hash, and a stored value that is not one of our hashes. */
export async function verifySecret(secret: string, stored: string | undefined): Promise<boolean> {
  const match = STORED_PATTERN.exec(stored ?? STAND_IN_HASH);
  if (match === null) return false;
  const [, n = '', r = '', p = '', salt = '', hash = ''] = match;
  const params = { N: Number(n), r: Number(r), p: Number(p) };
  const expected = Buffer.from(hash, 'base64url');
  if (!isUsable(params) || expected.length === 0) return false;
  const actual = await deriveKey(secret, Buffer.from(salt, 'base64url'), expected.length, params);
  return timingSafeEqual(actual, expected) && stored !== undefined;
}

function isUsable({ N, r, p }: { N: number; r: number; p: number }): boolean {
  const isPowerOfTwo = N > 1 && N <= 2 ** 20 && (N & (N - 1)) === 0;
  return isPowerOfTwo && r >= 1 && r <= 32 && p >= 1 && p <= 16;
}
