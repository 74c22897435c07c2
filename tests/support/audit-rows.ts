import type { Knex } from 'knex';
import type { StoredAuditRow } from '../../warehouse/audit/record-audit.ts';

/** The columns that say what happened; the chain's digests are left to the chain's own tests. */
const AUDIT_EVENT_COLUMNS = ['id', 'at', 'actor', 'entity', 'action', 'target', 'details'] as const;

export type AuditEventRow = Pick<StoredAuditRow, (typeof AUDIT_EVENT_COLUMNS)[number]>;

export async function countAuditRows(knex: Knex): Promise<number> {
  const [row] = await knex('hub_audit').count<Array<{ n: number | string }>>({ n: '*' });
  return Number(row?.n);
}

/**
 * The events that match `where`, in the order they were written, leaving out the first `skip`:
 * with a count taken before a request, what that request added.
 */
export function fetchAuditEvents(
  knex: Knex,
  where: Partial<AuditEventRow> = {},
  skip = 0,
): Promise<AuditEventRow[]> {
  return knex('hub_audit')
    .where(where)
    .orderBy('id')
    .offset(skip)
    .select<AuditEventRow[]>(...AUDIT_EVENT_COLUMNS);
}
