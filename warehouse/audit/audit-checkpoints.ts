import { createHmac, timingSafeEqual, type KeyObject } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';

/** Where the chain stood at one moment: how many rows, and the id and hash of the newest. */
export interface AuditHead {
  rows: number;
  headId: number | null;
  headHash: string | null;
}

/** What a checkpoint file holds; `signature` is an HMAC-SHA-256 of the other fields. */
export interface AuditCheckpoint {
  version: 1;
  /** The warehouse the chain lives in (its URL without password), so one folder cannot confuse two warehouses. */
  warehouse: string;
  at: string;
  rows: number;
  head_id: number | null;
  head_hash: string | null;
}

export interface CheckpointFile {
  file: string;
  checkpoint: AuditCheckpoint;
}

export interface CheckpointFolder {
  /** Checkpoints of this warehouse whose signature verifies, fewest rows first. */
  valid: CheckpointFile[];
  /** Files named like checkpoints that are not: unreadable, malformed, or signed with another key. */
  invalid: Array<{ file: string; reason: string }>;
}

/** Any file so named is taken for a checkpoint, so that a bad one is reported rather than passed over. */
const FILE_PATTERN = /^audit-checkpoint-.*\.json$/;
const KEEP_FILES = 200;

/**
 * The head first, then the rows up to it: appends are serialized by the chain lock, so every
 * row below a committed head is committed, and a row appended meanwhile is not counted.
 *
 * After `since`, a checkpoint whose head row the log still holds with its hash
 * (checkCheckpointHead), only the rows after that head are counted and added to its rows: what a
 * running hub's checkpoints cost grows with the rows appended since the last one, not with the
 * whole log. A row deleted before that head then leaves the count above the rows held, which
 * `hub audit verify` names, with the broken chain.
 */
export async function fetchAuditHead(knex: Knex, since?: AuditCheckpoint): Promise<AuditHead> {
  const last = await knex('hub_audit')
    .orderBy('id', 'desc')
    .first<{ id: number | string; hash: string } | undefined>('id', 'hash');
  if (last === undefined) return { rows: 0, headId: null, headHash: null };
  const after = since?.head_id ?? null;
  const counted = knex('hub_audit').where('id', '<=', last.id);
  if (after !== null) counted.where('id', '>', after);
  const count = await counted.count<Array<{ n: number | string }>>({ n: '*' });
  const before = after === null ? 0 : since!.rows;
  return { rows: before + Number(count[0]?.n ?? 0), headId: Number(last.id), headHash: last.hash };
}

const canonical = (c: AuditCheckpoint) =>
  JSON.stringify([c.version, c.warehouse, c.at, c.rows, c.head_id, c.head_hash]);

export function signCheckpoint(checkpoint: AuditCheckpoint, key: KeyObject): string {
  return createHmac('sha256', key).update(canonical(checkpoint)).digest('hex');
}

function isSignatureValid(checkpoint: AuditCheckpoint, signature: string, key: KeyObject): boolean {
  const expected = Buffer.from(signCheckpoint(checkpoint, key), 'hex');
  const given = Buffer.from(signature, 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

/**
 * Writes one signed checkpoint of the chain's head into `dir`, atomically (a temporary file
 * synced, then renamed), and keeps the newest files. The folder is outside the database, so the
 * database role cannot rewrite it, and the key is outside the warehouse, so no one who can only
 * reach the database can forge one.
 */
export async function writeAuditCheckpoint(
  dir: string,
  key: KeyObject,
  checkpoint: Omit<AuditCheckpoint, 'version'>,
): Promise<CheckpointFile> {
  await mkdir(dir, { recursive: true });
  const full: AuditCheckpoint = { version: 1, ...checkpoint };
  const file = path.join(
    dir,
    `audit-checkpoint-${full.at.replace(/[-:.]/g, '')}-${String(full.rows).padStart(12, '0')}.json`,
  );
  const temporary = `${file}.${process.pid}.tmp`;
  const handle = await open(temporary, 'w', 0o644);
  try {
    await handle.writeFile(`${JSON.stringify({ ...full, signature: signCheckpoint(full, key) }, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await rename(temporary, file);
  await pruneCheckpoints(dir);
  return { file, checkpoint: full };
}

async function pruneCheckpoints(dir: string): Promise<void> {
  const names = await listCheckpointFiles(dir);
  for (const name of names.slice(0, Math.max(0, names.length - KEEP_FILES)))
    await rm(path.join(dir, name), { force: true });
}

/** The files of the folder named like checkpoints; a missing folder holds none. */
export async function listCheckpointFiles(dir: string): Promise<string[]> {
  try {
    return (await readdir(dir)).filter((n) => FILE_PATTERN.test(n)).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new Error(`cannot read the audit checkpoint folder ${dir}: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/**
 * Reads every checkpoint file of the folder; a missing folder holds none. A checkpoint is valid
 * under any of `keys` (the hub's current key first, then the previous ones kept after a rotation).
 */
export async function readAuditCheckpoints(
  dir: string,
  keys: readonly KeyObject[],
  warehouse: string,
): Promise<CheckpointFolder> {
  const names = await listCheckpointFiles(dir);
  const folder: CheckpointFolder = { valid: [], invalid: [] };
  for (const name of names) {
    const file = path.join(dir, name);
    const parsed = parseCheckpoint(await readFile(file, 'utf8').catch((err: Error) => `\0${err.message}`));
    if (typeof parsed === 'string') folder.invalid.push({ file, reason: parsed });
    else if (!keys.some((key) => isSignatureValid(parsed.checkpoint, parsed.signature, key)))
      folder.invalid.push({
        file,
        reason: 'its signature does not verify (forged, edited, or signed with another key)',
      });
    else if (parsed.checkpoint.warehouse === warehouse)
      folder.valid.push({ file, checkpoint: parsed.checkpoint });
  }
  folder.valid.sort(
    (a, b) => a.checkpoint.rows - b.checkpoint.rows || a.checkpoint.at.localeCompare(b.checkpoint.at),
  );
  return folder;
}

function parseCheckpoint(text: string): { checkpoint: AuditCheckpoint; signature: string } | string {
  if (text.startsWith('\0')) return `cannot be read: ${text.slice(1)}`;
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return 'is not JSON';
  }
  const r = raw as Record<string, unknown>;
  const isCount = (v: unknown) => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  const ok =
    typeof raw === 'object' &&
    raw !== null &&
    r.version === 1 &&
    typeof r.warehouse === 'string' &&
    typeof r.at === 'string' &&
    isCount(r.rows) &&
    (r.head_id === null || isCount(r.head_id)) &&
    (r.head_hash === null || (typeof r.head_hash === 'string' && /^[0-9a-f]{64}$/.test(r.head_hash))) &&
    typeof r.signature === 'string' &&
    /^[0-9a-f]{64}$/.test(r.signature);
  if (!ok) return 'is not a checkpoint (fields missing or of the wrong type)';
  const checkpoint: AuditCheckpoint = {
    version: 1,
    warehouse: r.warehouse as string,
    at: r.at as string,
    rows: r.rows as number,
    head_id: r.head_id as number | null,
    head_hash: r.head_hash as string | null,
  };
  return { checkpoint, signature: r.signature as string };
}

/**
 * Whether the log still holds the checkpoint's head row with the hash it had, read by its id;
 * if not, what is missing, as compareWithCheckpoint says it (a deleted tail, a rewritten chain).
 * Rows deleted before the head are left to compareWithCheckpoint, which counts the whole log.
 */
export async function checkCheckpointHead(knex: Knex, file: CheckpointFile): Promise<string | null> {
  const { checkpoint } = file;
  if (checkpoint.head_id === null || checkpoint.rows === 0) return null;
  const head = await knex('hub_audit')
    .where('id', checkpoint.head_id)
    .first<{ hash: string } | undefined>('hash');
  return head?.hash === checkpoint.head_hash ? null : compareWithCheckpoint(knex, file);
}

/**
 * Whether the log still holds what the checkpoint saw: the row it named as head, with the same
 * hash, and as many rows up to it. The chain walk proves every row up to the head is linked, so
 * together they prove the whole checkpointed prefix is intact. Returns what is missing, or null.
 */
export async function compareWithCheckpoint(
  knex: Knex,
  { file, checkpoint }: CheckpointFile,
): Promise<string | null> {
  if (checkpoint.head_id === null || checkpoint.rows === 0) return null;
  const seen = `the checkpoint of ${checkpoint.at} (${path.basename(file)}) counted ${checkpoint.rows} rows ending with row ${checkpoint.head_id}`;
  const head = await knex('hub_audit')
    .where('id', checkpoint.head_id)
    .first<{ hash: string } | undefined>('hash');
  const now = await fetchAuditHead(knex);
  if (head === undefined) {
    if (now.rows === 0) return `all rows are missing: ${seen}; the audit log is empty`;
    const before = await knex('hub_audit')
      .where('id', '<=', checkpoint.head_id)
      .count<Array<{ n: number | string }>>({ n: '*' });
    const kept = Number(before[0]?.n ?? 0);
    const lastKept = await knex('hub_audit')
      .where('id', '<=', checkpoint.head_id)
      .orderBy('id', 'desc')
      .first<{ id: number | string } | undefined>('id');
    const from = lastKept === undefined ? 'the start' : `row ${Number(lastKept.id)}`;
    return `rows deleted from the tail: ${seen}; ${checkpoint.rows - kept} of them are missing, every row after ${from} up to row ${checkpoint.head_id}`;
  }
  if (head.hash !== checkpoint.head_hash) {
    return `the chain was rewritten: ${seen}, whose hash was ${checkpoint.head_hash}; row ${checkpoint.head_id} now has hash ${head.hash}`;
  }
  const upToHead = await knex('hub_audit')
    .where('id', '<=', checkpoint.head_id)
    .count<Array<{ n: number | string }>>({ n: '*' });
  const count = Number(upToHead[0]?.n ?? 0);
  if (count !== checkpoint.rows) {
    return `${seen}; the log now holds ${count} rows up to it (${checkpoint.rows > count ? 'deleted' : 'inserted'} rows)`;
  }
  return null;
}
