import type { Knex } from 'knex';
import { dialectOf } from '../dialects/index.ts';
import {
  AUDIT_COLUMNS,
  computeAuditHash,
  computeSubjectsHash,
  GENESIS_HASH,
  type StoredAuditRow,
  type StoredSubjectRow,
} from './record-audit.ts';

export type AuditChainReport =
  { ok: true; rows: number } | { ok: false; rows: number; brokenAt: number; reason: string };

const PAGE_SIZE = 1000;

/**
 * Walks the log in id order, one page at a time, up to the row that was last when it started,
 * and recomputes every hash. A row whose own hash
 * does not match was edited; a row whose prev_hash does not match the row before it follows an
 * edited or deleted row; a row whose subject rows do not match the digest it carries had its
 * "who read this person" rows edited, added or deleted. An id gap alone is not a break: a
 * PostgreSQL sequence skips the ids of rolled-back appends, and a real deletion always breaks
 * the next row's link. What the walk cannot see is a deleted tail (or a log deleted whole, or
 * rewritten from some row on): the signed checkpoints catch those (audit-checkpoints.ts).
 */
export async function verifyAuditChain(
  knex: Knex,
  options: { pageSize?: number } = {},
): Promise<AuditChainReport> {
  const pageSize = options.pageSize ?? PAGE_SIZE;
  let rows = 0;
  let prev: { id: number; hash: string } | null = null;
  // The log as it stands when the walk starts: a hub appending faster than the walk reads must
  // not keep it from ending.
  const head = await knex('hub_audit').max<Array<{ id: number | string | null }>>({ id: 'id' });
  const headId = Number(head[0]?.id ?? 0);
  for (;;) {
    const page: StoredAuditRow[] = await knex('hub_audit')
      .where('id', '>', prev?.id ?? 0)
      .andWhere('id', '<=', headId)
      .orderBy('id')
      .limit(pageSize)
      .select('id', ...AUDIT_COLUMNS);
    const last = page.at(-1);
    const subjects = await fetchSubjectsBetween(
      knex,
      prev?.id ?? 0,
      page.length < pageSize || last === undefined ? null : Number(last.id),
    );
    for (const row of page) {
      const id = Number(row.id);
      const broken = findBreak(prev, id, row, subjects.get(id) ?? []);
      if (broken !== null) return { ok: false, rows, brokenAt: id, reason: broken };
      subjects.delete(id);
      rows += 1;
      prev = { id, hash: row.hash };
    }
    if (page.length < pageSize) await forgetEventsAppendedSince(knex, subjects, prev?.id ?? 0);
    // Subject rows left over name an event that is not in the log.
    const orphan = [...subjects.keys()].sort((a, b) => a - b)[0];
    if (orphan !== undefined) {
      return {
        ok: false,
        rows,
        brokenAt: orphan,
        reason: `subject rows name event ${orphan}, which is not in the log (added, or their event was deleted)`,
      };
    }
    if (page.length < pageSize) return { ok: true, rows };
  }
}

/** Subject rows of events after `afterId`, up to `upToId` (or all of them when null), by event. */
async function fetchSubjectsBetween(
  knex: Knex,
  afterId: number,
  upToId: number | null,
): Promise<Map<number, string[]>> {
  const query = knex('hub_audit_subjects').where('audit_id', '>', afterId);
  if (upToId !== null) void query.andWhere('audit_id', '<=', upToId);
  const rows: StoredSubjectRow[] = await query.select('audit_id', 'national_id');
  const byEvent = new Map<number, string[]>();
  for (const r of rows) {
    const id = Number(r.audit_id);
    const list = byEvent.get(id) ?? [];
    list.push(r.national_id);
    byEvent.set(id, list);
  }
  return byEvent;
}

/**
 * The last page's subject rows were read after its events, with no upper bound, so on a live hub
 * they include the subjects of events appended in between: those events are in the log now, and
 * their rows are not orphans (an event and its subject rows commit together). They are past the
 * walked tail, left to the next verification.
 */
async function forgetEventsAppendedSince(
  knex: Knex,
  subjects: Map<number, string[]>,
  tailId: number,
): Promise<void> {
  const later = [...subjects.keys()].filter((id) => id > tailId);
  const { maxBindings } = dialectOf(knex);
  for (let i = 0; i < later.length; i += maxBindings) {
    const present: Array<{ id: number | string }> = await knex('hub_audit')
      .whereIn('id', later.slice(i, i + maxBindings))
      .select('id');
    for (const { id } of present) subjects.delete(Number(id));
  }
}

function findBreak(
  prev: { id: number; hash: string } | null,
  id: number,
  row: StoredAuditRow,
  subjects: string[],
): string | null {
  const expectedPrev = prev?.hash ?? GENESIS_HASH;
  if (row.prev_hash !== expectedPrev) {
    const firstExpected = (prev?.id ?? 0) + 1;
    if (id > firstExpected) {
      const missing =
        id - 1 === firstExpected ? `row ${firstExpected} is` : `rows ${firstExpected}-${id - 1} are`;
      return `${missing} missing: prev_hash does not match the hash of ${prev === null ? 'the chain start' : `row ${prev.id}`}`;
    }
    return `prev_hash does not match the hash of ${prev === null ? 'the chain start' : `row ${prev.id}`} (that row was rewritten, or this row's prev_hash was edited)`;
  }
  if (computeAuditHash(row.prev_hash, row) !== row.hash)
    return 'row was edited: its hash does not match its contents';
  if (row.subjects_hash === null) {
    // Written before subjects were chained: its subject rows were never covered by the hash.
    return null;
  }
  if (computeSubjectsHash(subjects) !== row.subjects_hash)
    return `its subject rows (who read whom) were edited, added or deleted: ${subjects.length} stored national IDs do not match the digest in the chain`;
  return null;
}
