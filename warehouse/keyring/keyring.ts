import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  hkdfSync,
  randomBytes,
  type KeyObject,
} from 'node:crypto';
import { statSync, type Stats } from 'node:fs';
import { HubError } from '../core/errors.ts';
import {
  assertPrivateFile,
  countKeyFileWrites,
  buildKid,
  createKeyFileIfMissing,
  readKeyFile,
  type MasterKey,
} from './key-file.ts';

/**
 * Where the master keys come from (server/config.ts decides): the key file, or keys given in
 * HUB_SECRET_KEY (the first is current).
 */
export type SecretKeySource =
  { kind: 'file'; path: string; createIfMissing: boolean } | { kind: 'env'; keys: string[] };

/** A purpose's secret under one master key. */
export interface Subkey {
  kid: string;
  key: Buffer;
}

/** An Ed25519 key pair derived from a purpose's subkey: the same key file gives the same pair in every process. */
export interface SigningKeyPair {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

/** What `hub keys list` shows: never the key itself. */
export interface KeyInfo {
  kid: string;
  current: boolean;
  created_at: string | null;
  retired_at: string | null;
}

export interface KeyringOptions {
  /** Called once when the key file did not exist and this process created it. */
  onCreate?: (file: string) => void;
  /** Time stamps for a created key file. */
  now?: () => Date;
}

const HKDF_SALT = Buffer.from('registry-hub keyring v1');
const PURPOSE_PATTERN = /^[a-z][a-z0-9.-]{0,63}$/;
const SEAL_IV_BYTES = 12;
const SEAL_TAG_BYTES = 16;
const SEALED_PATTERN = /^([a-z0-9]{12})\.([A-Za-z0-9_-]{16})\.([A-Za-z0-9_-]{22,})$/;
// An Ed25519 private key in PKCS#8 is this fixed prefix followed by the 32-byte seed (RFC 8410).
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

const keyringError = (code: string, message: string) => new HubError(code, 500, message);

function assertPurpose(purpose: string): void {
  if (!PURPOSE_PATTERN.test(purpose))
    throw new Error(`key purpose ${JSON.stringify(purpose)} must match ${PURPOSE_PATTERN.source}`);
}

/**
 * The hub's secret keys, kept out of the warehouse: a reader of a database backup holds none of
 * them. Each part of the hub asks for a subkey by purpose (HKDF-SHA-256 of the master key with
 * the purpose as info), so no two uses ever share a key and a leaked subkey reveals neither the
 * master key nor another purpose's subkey.
 *
 * Several master keys may be present: the first (current) signs, encrypts and hashes new
 * things; the others only verify and decrypt what was made under them, named by the `kid` that
 * is stored or sent beside every signature, ciphertext and hash. The key file is re-read when it
 * changes on disk (one stat per turn of the event loop, and at once after this process wrote it),
 * so `hub keys rotate` and `hub keys prune` take effect in every running hub process at its next
 * request.
 *
 * Purposes in use: 'api-token' (HS256 access tokens), 'client-secret' (HMAC of API client
 * secrets), 'totp-secret' (AES-256-GCM of portal users' TOTP secrets), 'portal-session'
 * (portal session cookie signatures). Others pick their own
 * lower-case name, e.g. 'audit-checkpoint' or 'dci-signing'.
 */
export class Keyring {
  private readonly source: SecretKeySource;
  private readonly options: KeyringOptions;
  private keys: MasterKey[] | null = null;
  private fileStamp: string | null = null;
  /** Set while the key file's stat is fresh: until the end of the current turn of the event loop. */
  private statFresh = false;
  private writesSeen = -1;
  private readonly subkeys = new Map<string, Buffer>();
  private readonly secretKeys = new Map<string, KeyObject>();
  private readonly keyPairs = new Map<string, SigningKeyPair>();

  constructor(source: SecretKeySource, options: KeyringOptions = {}) {
    this.source = source;
    this.options = options;
  }

  /** The kid of the key that signs, encrypts and hashes new things. */
  currentKid(): string {
    return this.fetchKeys()[0]!.kid;
  }

  /** Every key, current first, without the secrets. */
  listKeys(): KeyInfo[] {
    return this.fetchKeys().map((k, i) => ({
      kid: k.kid,
      current: i === 0,
      created_at: k.created_at,
      retired_at: k.retired_at,
    }));
  }

  /** The purpose's subkey under the current key (length in bytes, 32 by default). */
  deriveSubkey(purpose: string, length = 32): Subkey {
    return this.findSubkey(purpose, this.currentKid(), length)!;
  }

  /** The purpose's subkey under the named key; null when that key is not (or no longer) in the keyring. */
  findSubkey(purpose: string, kid: string, length = 32): Subkey | null {
    assertPurpose(purpose);
    const master = this.fetchKeys().find((k) => k.kid === kid);
    if (master === undefined) return null;
    const cacheKey = `${kid}\0${purpose}\0${length}`;
    let key = this.subkeys.get(cacheKey);
    if (key === undefined) {
      key = Buffer.from(hkdfSync('sha256', master.secret, HKDF_SALT, `registry-hub/${purpose}`, length));
      this.subkeys.set(cacheKey, key);
    }
    return { kid, key };
  }

  /** The purpose's subkey under every key, current first: for checking something whose kid is not known. */
  listSubkeys(purpose: string, length = 32): Subkey[] {
    return this.fetchKeys().map((k) => this.findSubkey(purpose, k.kid, length)!);
  }

  /** The current subkey as a secret KeyObject (for HMAC or jose's HS256), built once per key. */
  deriveSecretKey(purpose: string): { kid: string; key: KeyObject } {
    const kid = this.currentKid();
    return { kid, key: this.findSecretKey(purpose, kid)! };
  }

  findSecretKey(purpose: string, kid: string): KeyObject | null {
    const cacheKey = `${kid}\0${purpose}`;
    const cached = this.secretKeys.get(cacheKey);
    if (cached !== undefined && this.hasKid(kid)) return cached;
    const subkey = this.findSubkey(purpose, kid);
    if (subkey === null) return null;
    const key = createSecretKey(subkey.key);
    this.secretKeys.set(cacheKey, key);
    return key;
  }

  /** An Ed25519 key pair for signing under the current key; its public half may be published (JWKS). */
  deriveSigningKeyPair(purpose: string): SigningKeyPair {
    return this.findSigningKeyPair(purpose, this.currentKid())!;
  }

  findSigningKeyPair(purpose: string, kid: string): SigningKeyPair | null {
    const cacheKey = `${kid}\0${purpose}`;
    const cached = this.keyPairs.get(cacheKey);
    if (cached !== undefined && this.hasKid(kid)) return cached;
    const seed = this.findSubkey(purpose, kid, 32);
    if (seed === null) return null;
    const privateKey = createPrivateKey({
      key: Buffer.concat([ED25519_PKCS8_PREFIX, seed.key]),
      format: 'der',
      type: 'pkcs8',
    });
    const pair = { kid, privateKey, publicKey: createPublicKey(privateKey) };
    this.keyPairs.set(cacheKey, pair);
    return pair;
  }

  /** The public keys of every key for the purpose, current first: what a verifier (or /.well-known/jwks.json) needs. */
  listSigningPublicKeys(purpose: string): Array<{ kid: string; publicKey: KeyObject }> {
    return this.fetchKeys().map((k) => {
      const { kid, publicKey } = this.findSigningKeyPair(purpose, k.kid)!;
      return { kid, publicKey };
    });
  }

  /**
   * AES-256-GCM under the purpose's current subkey: `<kid>.<iv>.<ciphertext and tag>`, all
   * base64url. The context (e.g. a username) is authenticated with it, so a sealed value copied
   * into another row does not open there.
   */
  sealText(purpose: string, text: string, context: string): string {
    const { kid, key } = this.deriveSubkey(purpose);
    const iv = randomBytes(SEAL_IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', key, iv);
    cipher.setAAD(Buffer.from(`${purpose}\0${context}`));
    const sealed = Buffer.concat([cipher.update(text, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return `${kid}.${iv.toString('base64url')}.${sealed.toString('base64url')}`;
  }

  /** The text sealed by sealText with the same purpose and context; throws when the key is gone or the value was altered. */
  unsealText(purpose: string, sealed: string, context: string): string {
    const match = SEALED_PATTERN.exec(sealed);
    if (match === null) throw keyringError('sealed_value_invalid', 'not a sealed value');
    const [, kid = '', iv = '', body = ''] = match;
    const subkey = this.findSubkey(purpose, kid);
    if (subkey === null)
      throw keyringError('key_not_found', `sealed under key ${kid}, which is not in the keyring`);
    const data = Buffer.from(body, 'base64url');
    try {
      const decipher = createDecipheriv('aes-256-gcm', subkey.key, Buffer.from(iv, 'base64url'));
      decipher.setAAD(Buffer.from(`${purpose}\0${context}`));
      decipher.setAuthTag(data.subarray(data.length - SEAL_TAG_BYTES));
      return Buffer.concat([
        decipher.update(data.subarray(0, data.length - SEAL_TAG_BYTES)),
        decipher.final(),
      ]).toString('utf8');
    } catch {
      throw keyringError('sealed_value_invalid', `sealed value under key ${kid} does not authenticate`);
    }
  }

  private hasKid(kid: string): boolean {
    return this.fetchKeys().some((k) => k.kid === kid);
  }

  /** The keys as they are now: the key file is read again when its size, time or inode changed. */
  private fetchKeys(): MasterKey[] {
    if (this.source.kind === 'env') {
      this.keys ??= mapEnvKeys(this.source.keys);
      return this.keys;
    }
    // Every request asks several times; within one turn of the event loop, no request of this
    // process can have seen the file change between those asks but by its own write.
    if (this.keys !== null && this.statFresh && this.writesSeen === countKeyFileWrites()) return this.keys;
    const file = this.source.path;
    let stats = statFile(file);
    if (stats === null) {
      if (this.keys !== null)
        throw keyringError(
          'missing_key_file',
          `key file ${file} has disappeared; restore it from your key backup`,
        );
      if (!this.source.createIfMissing) {
        throw keyringError(
          'missing_key_file',
          `no key file at ${file}: create one with hub keys rotate, or set HUB_SECRET_KEY`,
        );
      }
      if (createKeyFileIfMissing(file, (this.options.now?.() ?? new Date()).toISOString()))
        this.options.onCreate?.(file);
      stats = statFile(file)!;
    }
    const stamp = `${stats.ino}:${stats.size}:${stats.mtimeMs}:${stats.ctimeMs}`;
    if (this.keys === null || stamp !== this.fileStamp) {
      assertPrivateFile(file);
      this.keys = readKeyFile(file);
      this.fileStamp = stamp;
      this.subkeys.clear();
      this.secretKeys.clear();
      this.keyPairs.clear();
    }
    this.writesSeen = countKeyFileWrites();
    if (!this.statFresh) {
      this.statFresh = true;
      setImmediate(() => {
        this.statFresh = false;
      });
    }
    return this.keys;
  }
}

function statFile(file: string): Stats | null {
  try {
    return statSync(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/** HUB_SECRET_KEY's text is the input keying material as it stands (UTF-8). */
function mapEnvKeys(keys: string[]): MasterKey[] {
  return keys.map((text) => {
    const secret = Buffer.from(text, 'utf8');
    return { kid: buildKid(secret), secret, created_at: null, retired_at: null };
  });
}

export function openKeyring(source: SecretKeySource, options: KeyringOptions = {}): Keyring {
  return new Keyring(source, options);
}
