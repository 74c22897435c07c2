import { createHash, randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import path from 'node:path';
import { HubError } from '../core/errors.ts';

/** One master key: the input from which every purpose's subkey is derived. */
export interface MasterKey {
  kid: string;
  /** The input keying material. */
  secret: Buffer;
  created_at: string | null;
  /** When a newer key became current; null for the current key and for keys given in HUB_SECRET_KEY. */
  retired_at: string | null;
}

/** What the key file holds: the current key first, then the previous ones, newest first. */
export interface KeyFileContent {
  format: typeof KEY_FILE_FORMAT;
  keys: Array<{ kid: string; key: string; created_at: string; retired_at: string | null }>;
}

export const KEY_FILE_FORMAT = 'registry-hub-keys/1';
const KEY_BYTES = 32;
const KID_PATTERN = /^[a-z0-9]{12}$/;
// Group or other access to the key file would let another local account read it.
const FORBIDDEN_MODE_BITS = 0o077;

const keyFileError = (file: string, why: string) =>
  new HubError('invalid_key_file', 500, `key file ${file}: ${why}`);

/** A key id that names the key without revealing it: a hash of the key, never the key itself. */
export function buildKid(secret: Buffer): string {
  return createHash('sha256').update('registry-hub kid\0').update(secret).digest('hex').slice(0, 12);
}

export function buildMasterKey(createdAt: string): KeyFileContent['keys'][number] {
  const secret = randomBytes(KEY_BYTES);
  return {
    kid: buildKid(secret),
    key: secret.toString('base64url'),
    created_at: createdAt,
    retired_at: null,
  };
}

/** The keys of a file that exists; a malformed file, or one others may read, is refused with a message naming the file. */
export function readKeyFile(file: string): MasterKey[] {
  return mapKeyFileContent(file, parseKeyFile(file, readFileSync(file, 'utf8')));
}

export function parseKeyFile(file: string, text: string): KeyFileContent {
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch {
    throw keyFileError(file, 'not JSON');
  }
  const c = content as Partial<KeyFileContent> | null;
  if (c === null || typeof c !== 'object' || c.format !== KEY_FILE_FORMAT)
    throw keyFileError(file, `format must be "${KEY_FILE_FORMAT}"`);
  if (!Array.isArray(c.keys) || c.keys.length === 0)
    throw keyFileError(file, 'keys: must list at least one key');
  return c as KeyFileContent;
}

function mapKeyFileContent(file: string, content: KeyFileContent): MasterKey[] {
  const seen = new Set<string>();
  return content.keys.map((entry, i) => {
    const where = `keys[${i}]`;
    if (typeof entry !== 'object' || entry === null) throw keyFileError(file, `${where}: must be an object`);
    const secret = typeof entry.key === 'string' ? Buffer.from(entry.key, 'base64url') : Buffer.alloc(0);
    if (secret.length < KEY_BYTES)
      throw keyFileError(file, `${where}.key: must be at least ${KEY_BYTES} bytes in base64url`);
    if (typeof entry.kid !== 'string' || !KID_PATTERN.test(entry.kid))
      throw keyFileError(file, `${where}.kid: must be 12 lower-case letters or digits`);
    if (entry.kid !== buildKid(secret)) throw keyFileError(file, `${where}.kid: does not match its key`);
    if (seen.has(entry.kid)) throw keyFileError(file, `${where}.kid: ${entry.kid} appears twice`);
    seen.add(entry.kid);
    if (i === 0 && entry.retired_at !== null)
      throw keyFileError(file, 'keys[0] is the current key: its retired_at must be null');
    return {
      kid: entry.kid,
      secret,
      created_at: entry.created_at ?? null,
      retired_at: entry.retired_at ?? null,
    };
  });
}

export function assertPrivateFile(file: string): void {
  if (process.platform === 'win32') return;
  const mode = statSync(file).mode;
  if ((mode & FORBIDDEN_MODE_BITS) !== 0) {
    throw keyFileError(
      file,
      `readable by other accounts (mode ${(mode & 0o777).toString(8)}): run chmod 600 ${file}`,
    );
  }
}

let writesInProcess = 0;

/** How many key files this process has written: a keyring that saw fewer reads its file again at once. */
export function countKeyFileWrites(): number {
  return writesInProcess;
}

/**
 * Writes the whole file under a temporary name and renames it over the old one, so a reader
 * (another hub process) sees the old keys or the new ones, never half a file.
 */
export function writeKeyFile(file: string, content: KeyFileContent): void {
  renameSync(writeTemporaryFile(file, content), file);
  writesInProcess++;
}

function writeTemporaryFile(file: string, content: KeyFileContent): string {
  mkdirSync(path.dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const fd = openSync(temporary, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(content, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  // The umask may have narrowed the mode further, never widened it; make it exact.
  chmodSync(temporary, 0o600);
  return temporary;
}

/**
 * Creates the file with one new key unless it exists. Two processes starting together on an
 * empty data folder must end with the same key: the complete file is written under a temporary
 * name and linked into place, which fails for the second process, which then reads the first's.
 */
export function createKeyFileIfMissing(file: string, createdAt: string): boolean {
  const temporary = writeTemporaryFile(file, { format: KEY_FILE_FORMAT, keys: [buildMasterKey(createdAt)] });
  try {
    linkSync(temporary, file);
    writesInProcess++;
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw err;
  } finally {
    unlinkSync(temporary);
  }
}

/**
 * Puts a new current key first and marks the old current key retired now; every old key stays
 * to verify and decrypt what was made under it. Creates the file when there is none.
 */
export function rotateKeyFile(file: string, now: Date): { kid: string; previous: string[] } {
  const at = now.toISOString();
  const existing = readExistingContent(file);
  const fresh = buildMasterKey(at);
  const previous = (existing?.keys ?? []).map((k, i) => (i === 0 ? { ...k, retired_at: at } : k));
  writeKeyFile(file, { format: KEY_FILE_FORMAT, keys: [fresh, ...previous] });
  return { kid: fresh.kid, previous: previous.map((k) => k.kid) };
}

/** Removes the previous keys that `remove` picks; the current key always stays. Returns the removed kids. */
export function pruneKeyFile(file: string, remove: (key: MasterKey) => boolean): string[] {
  const existing = readExistingContent(file);
  if (existing === null) throw new HubError('missing_key_file', 500, `no key file at ${file}`);
  const keys = mapKeyFileContent(file, existing);
  const removed = keys
    .slice(1)
    .filter(remove)
    .map((k) => k.kid);
  if (removed.length > 0) {
    writeKeyFile(file, {
      format: KEY_FILE_FORMAT,
      keys: existing.keys.filter((k) => !removed.includes(k.kid)),
    });
  }
  return removed;
}

function readExistingContent(file: string): KeyFileContent | null {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  assertPrivateFile(file);
  const content = parseKeyFile(file, text);
  mapKeyFileContent(file, content);
  return content;
}
