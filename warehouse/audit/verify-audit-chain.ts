import type { Knex } from 'knex';
import { computeAuditHash, GENESIS_HASH, type ChainedFields } from './record-audit.ts';

export type AuditChainReport =
  { ok: true; rows: number } | { ok: false; rows: number; brokenAt: number; reason: string };

interface AuditRow extends ChainedFields {
  id: number | string;
  prev_hash: string;
  hash: string;
}

const PAGE_SIZE = 1000;

/**
 * Walks the log in id order, one page at a time, and recomputes every hash. A row whose own hash
 * does not match was edited; a row whose prev_hash does not match the row before it follows an
 * edited or deleted row. An id gap alone is not a break: a PostgreSQL sequence skips the ids of
 * rolled-back appends, and a real deletion always breaks the next row's link.
 */
export async function verifyAuditChain(
  knex: Knex,
  options: { pageSize?: number } = {},
): Promise<AuditChainReport> {
  const pageSize = options.pageSize ?? PAGE_SIZE;
  let rows = 0;
  let prev: { id: number; hash: string } | null = null;
  for (;;) {
    const page: AuditRow[] = await knex('hub_audit')
      .where('id', '>', prev?.id ?? 0)
      .orderBy('id')
      .limit(pageSize)
      .select('id', 'at', 'actor', 'entity', 'action', 'target', 'details', 'prev_hash', 'hash');
    for (const row of page) {
      const id = Number(row.id);
      const broken = findBreak(prev, id, row);
      if (broken !== null) return { ok: false, rows, brokenAt: id, reason: broken };
      rows += 1;
      prev = { id, hash: row.hash };
    }
    if (page.length < pageSize) return { ok: true, rows };
  }
}

function findBreak(prev: { id: number; hash: string } | null, id: number, row: AuditRow): string | null {
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
  return null;
}
