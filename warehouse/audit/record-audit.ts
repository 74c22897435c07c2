import { hash as oneShotHash } from 'node:crypto';
import type { Database } from 'better-sqlite3';
import type { Knex } from 'knex';
import { type Clock, isoNow } from '../core/clock.ts';
import { dialectOf } from '../dialects/index.ts';
import { withRawConnection } from '../dialects/raw-connection.ts';
import { prepareOnce } from '../dialects/sqlite-statements.ts';
import { writeWhenNotBusy, type TurnWrite } from '../dialects/sqlite-turn-writer.ts';
import { inWriteTransaction } from '../write-transaction.ts';

export interface AuditEvent {
  /** Who acted: a username, a client id, 'cli:<os user>' or 'scheduler'. */
  actor: string;
  /** The acting entity (consumer or custodian), when there is one. */
  entity?: string | null;
  /** login, token.issue, api.call, query.save, query.run, grant, revoke, connector.run, ... */
  action: string;
  target?: string | null;
  details?: Record<string, unknown>;
  /** National IDs whose data this event returned, for "who read this person's data". */
  subjects?: string[];
  /** When the event happened; defaults to the time it is appended (not the time its group is written). */
  at?: Date;
}

export const GENESIS_HASH = '0'.repeat(64);

/** The columns the hash covers, besides the previous hash. */
export interface ChainedFields {
  at: string;
  actor: string;
  entity: string | null;
  action: string;
  target: string | null;
  details: string;
  /** Digest of the event's subject rows; NULL only on rows written before subjects were chained. */
  subjects_hash: string | null;
}

/** A row of hub_audit as written: the chained fields, the hash they follow and their own hash. */
export interface ChainedRow extends ChainedFields {
  prev_hash: string;
  hash: string;
}

/** A row of hub_audit as read back; PostgreSQL returns the bigint id as a string. */
export interface StoredAuditRow extends ChainedRow {
  id: number | string;
}

/** A row of hub_audit_subjects as read back: one person an event's answer named. */
export interface StoredSubjectRow {
  audit_id: number | string;
  national_id: string;
}

// One-shot: every answer hashes twice, and a Hash object costs about as much again as the digest.
const sha256Hex = (text: string) => oneShotHash('sha256', text, 'hex');

/**
 * The hash covers the previous row's hash, so editing or deleting any row breaks every hash after
 * it, and the digest of the row's subjects, so editing, adding or deleting a "who read this
 * person" row breaks its event's hash. Rows written before the digest existed hash as they did.
 */
export function computeAuditHash(prevHash: string, row: ChainedFields): string {
  const fields = [prevHash, row.at, row.actor, row.entity, row.action, row.target, row.details];
  if (row.subjects_hash !== null) fields.push(row.subjects_hash);
  return sha256Hex(JSON.stringify(fields));
}

/** The subjects of one event, as a set: order and repeats do not matter. */
export function uniqueSubjects(subjects: readonly string[]): string[] {
  return [...new Set(subjects)].sort();
}

/** An event's subjects as a set, the JSON text of that set and its digest, as the chain keeps them. */
function describeSubjects(subjects: readonly string[]): { unique: string[]; json: string; hash: string } {
  const unique = uniqueSubjects(subjects);
  const json = JSON.stringify(unique);
  return { unique, json, hash: sha256Hex(json) };
}

export function computeSubjectsHash(subjects: readonly string[]): string {
  return describeSubjects(subjects).hash;
}

/**
 * Events are written in groups, and one value the column refuses would fail the whole group, so
 * text from requests is made to fit: cut to the column's size, U+0000 (refused by PostgreSQL)
 * replaced.
 */
function fitText(text: string, size: number): string {
  const clean = text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
  return clean.length > size ? clean.slice(0, size) : clean;
}

/** Two hub processes append to one chain: the tail is read and extended under a lock. */
const lockChain = (trx: Knex.Transaction) => dialectOf(trx).lockUntilCommit(trx, 'hub_audit');

/** Within SQLite's 500-row compound limit and SQL Server's 2100 parameters (audit rows have 9 columns). */
const ROWS_PER_INSERT = 200;

/** An event as written: its chained row and the subject rows its hash covers. */
interface ChainedEvent {
  row: ChainedRow;
  subjects: string[];
  /** The subjects as the JSON text their digest was taken of; SQLite inserts them from it. */
  subjectsJson: string;
}

/** The events as chained rows after `prevHash`, in order. */
function buildChainedRows(list: readonly AuditEvent[], prevHash: string, now: string): ChainedEvent[] {
  let prev = prevHash;
  return list.map((event) => {
    const subjects = describeSubjects(event.subjects ?? []);
    const fields: ChainedFields = {
      at: event.at?.toISOString() ?? now,
      actor: fitText(event.actor, 100),
      entity: event.entity == null ? null : fitText(event.entity, 16),
      action: fitText(event.action, 64),
      target: event.target == null ? null : fitText(event.target, 400),
      details: JSON.stringify(event.details ?? {}),
      subjects_hash: subjects.hash,
    };
    const hash = computeAuditHash(prev, fields);
    const row = { ...fields, prev_hash: prev, hash };
    prev = hash;
    return { row, subjects: subjects.unique, subjectsJson: subjects.json };
  });
}

/** The columns of an audit row besides its id, in the order they are written. */
export const AUDIT_COLUMNS = [
  'at',
  'actor',
  'entity',
  'action',
  'target',
  'details',
  'subjects_hash',
  'prev_hash',
  'hash',
] as const;
const SQLITE_TAIL = 'SELECT "hash" FROM "hub_audit" ORDER BY "id" DESC LIMIT 1';
const SQLITE_INSERT_EVENT = `INSERT INTO "hub_audit" (${AUDIT_COLUMNS.map((c) => `"${c}"`).join(', ')}) VALUES (${AUDIT_COLUMNS.map(() => '?').join(', ')})`;
/** An event's subjects in one statement, from a JSON list: a page of 100 rows names up to 100 people. */
const SQLITE_INSERT_SUBJECTS =
  'INSERT INTO "hub_audit_subjects" ("audit_id", "national_id") SELECT ?, "value" FROM json_each(?)';

/**
 * SQLite, inside the caller's transaction: the tail, the rows, their subjects, with prepared
 * statements on the writer's own connection. A group of API events then costs one short write
 * instead of a round of the query builder and the pool per statement. Being synchronous, no
 * other request can run between reading the tail and committing.
 */
function writeEventsOnSqlite(knex: Knex, db: Database, list: readonly AuditEvent[], now: string): void {
  // Announced to knex's query listeners like the statements knex runs itself (logging, debugging).
  const announce = (sql: string, bindings: unknown[]) => knex.emit('query', { method: 'raw', sql, bindings });
  const tail = prepareOnce(db, SQLITE_TAIL);
  const insertEvent = prepareOnce(db, SQLITE_INSERT_EVENT);
  const insertSubjects = prepareOnce(db, SQLITE_INSERT_SUBJECTS);
  announce(SQLITE_TAIL, []);
  const last = tail.get() as { hash: string } | undefined;
  for (const { row, subjects, subjectsJson } of buildChainedRows(list, last?.hash ?? GENESIS_HASH, now)) {
    const values = AUDIT_COLUMNS.map((c) => row[c]);
    announce(SQLITE_INSERT_EVENT, values);
    const id = insertEvent.run(values).lastInsertRowid;
    if (subjects.length === 0) continue;
    const bindings = [id, subjectsJson];
    announce(SQLITE_INSERT_SUBJECTS, bindings);
    insertSubjects.run(bindings);
  }
}

/**
 * The audit's part of a SQLite turn (see SqliteTurnWriter): the events answered in one turn of
 * the event loop are chained and written in the turn's one transaction.
 */
export function buildAuditTurnWrite(knex: Knex, clock: Clock): TurnWrite<AuditEvent, void> {
  return {
    name: 'audit',
    write: (db, events) => {
      writeEventsOnSqlite(knex, db, events, isoNow(clock));
      return events.map(() => undefined);
    },
  };
}

/**
 * An event whose content waits on a decision taken in the same transaction that writes it: the
 * verdict of `decide` (say, whether a rate window still had room) picks the event, so the two
 * commit together or not at all.
 */
export interface DecidedEvent<V> {
  /** Runs in the turn's transaction, before the event is chained; its verdict is the item's result. */
  decide(db: Database): V;
  eventFor(verdict: V): AuditEvent;
}

/** Decided events as part of a SQLite turn: every item decided in order, then their events chained. */
export function buildDecidedAuditTurnWrite(
  knex: Knex,
  clock: Clock,
): TurnWrite<DecidedEvent<unknown>, unknown> {
  return {
    name: 'decided audit',
    write: (db, items) => {
      const verdicts = items.map((item) => item.decide(db));
      const events = items.map((item, i) => item.eventFor(verdicts[i]));
      writeEventsOnSqlite(knex, db, events, isoNow(clock));
      return verdicts;
    },
  };
}

/** Appends events to the hash-chained log, in the caller's transaction or a new one. */
export async function recordAudit(
  executor: Knex | Knex.Transaction,
  clock: Clock,
  events: AuditEvent | AuditEvent[],
): Promise<void> {
  const list = Array.isArray(events) ? events : [events];
  if (list.length === 0) return;
  const append = async (trx: Knex.Transaction) => {
    await lockChain(trx);
    const last = await trx('hub_audit').orderBy('id', 'desc').first<{ hash: string } | undefined>('hash');
    const chained = buildChainedRows(list, last?.hash ?? GENESIS_HASH, isoNow(clock));
    // A group of events goes in as one multi-row insert; ids come back matched by hash.
    const idByHash = new Map<string, number>();
    for (let i = 0; i < chained.length; i += ROWS_PER_INSERT) {
      const inserted: Array<{ id: number | string; hash: string }> = await trx('hub_audit').insert(
        chained.slice(i, i + ROWS_PER_INSERT).map((event) => event.row),
        ['id', 'hash'],
      );
      for (const r of inserted) idByHash.set(r.hash, Number(r.id));
    }
    const subjects = chained.flatMap(({ row, subjects: held }) =>
      held.map((national_id) => ({ audit_id: idByHash.get(row.hash)!, national_id })),
    );
    for (let i = 0; i < subjects.length; i += ROWS_PER_INSERT) {
      await trx('hub_audit_subjects').insert(subjects.slice(i, i + ROWS_PER_INSERT));
    }
  };
  if (executor.isTransaction === true) await append(executor as Knex.Transaction);
  else if (dialectOf(executor).name === 'sqlite')
    await writeWhenNotBusy(() =>
      withRawConnection(executor, (db: Database) =>
        db.transaction(() => writeEventsOnSqlite(executor as Knex, db, list, isoNow(clock)))(),
      ),
    );
  else await inWriteTransaction(executor, append);
}
