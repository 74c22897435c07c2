import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';

export interface DciSigningKey {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** RFC 7638 thumbprint of the public key: the kid in the JWKS and in signatures. */
  kid: string;
  jwk: JWK;
}

/**
 * The one place the DCI signing key comes from: a PKCS#8 PEM file in the data folder, created
 * with mode 0600 on first use (flag wx, so two processes starting together keep one key). It
 * is never stored in the warehouse; when the hub gains a keyring, this function derives the key
 * from it instead and nothing else changes.
 */
export async function loadDciSigningKey(file: string): Promise<DciSigningKey> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    await mkdir(path.dirname(file), { recursive: true });
    const created = generateKeyPairSync('ed25519')
      .privateKey.export({ type: 'pkcs8', format: 'pem' })
      .toString();
    try {
      await writeFile(file, created, { mode: 0o600, flag: 'wx' });
      pem = created;
    } catch (writeErr) {
      if ((writeErr as NodeJS.ErrnoException).code !== 'EEXIST') throw writeErr;
      pem = await readFile(file, 'utf8');
    }
  }
  const privateKey = createPrivateKey(pem);
  if (privateKey.asymmetricKeyType !== 'ed25519') throw new Error(`${file}: not an Ed25519 private key`);
  const publicKey = createPublicKey(privateKey);
  const exported = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(exported);
  return { privateKey, publicKey, kid, jwk: { ...exported, kid, use: 'sig', alg: 'EdDSA' } };
}
