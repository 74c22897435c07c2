import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { HubConfig } from './config.ts';

const SECRET_BYTES = 32;

/**
 * The hub's own secret, which never goes into the warehouse: a reader of a database backup must
 * not be able to forge what it signs. HUB_SECRET_KEY wins; otherwise the file HUB_SECRET_KEY_FILE
 * (default data folder/secret.key), created with mode 0600 on first use when `create` is set.
 * Returns null when there is no secret and none may be created.
 */
export async function loadHubSecret(
  config: Pick<HubConfig, 'secretKey' | 'secretKeyFile'>,
  options: { create: boolean },
): Promise<Buffer | null> {
  if (config.secretKey !== undefined) return Buffer.from(config.secretKey, 'utf8');
  const existing = await readSecretFile(config.secretKeyFile);
  if (existing !== null || !options.create) return existing;
  await mkdir(path.dirname(config.secretKeyFile), { recursive: true });
  try {
    // 'wx': two processes starting at once must not each write their own secret.
    await writeFile(config.secretKeyFile, `${randomBytes(SECRET_BYTES).toString('base64url')}\n`, {
      mode: 0o600,
      flag: 'wx',
    });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return readSecretFile(config.secretKeyFile);
}

async function readSecretFile(file: string): Promise<Buffer | null> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`cannot read the secret key file ${file}: ${(err as Error).message}`, { cause: err });
  }
  const secret = text.trim();
  if (secret.length < SECRET_BYTES)
    throw new Error(`the secret key file ${file} holds fewer than ${SECRET_BYTES} characters`);
  return Buffer.from(secret, 'utf8');
}
