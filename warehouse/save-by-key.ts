import type { Knex } from 'knex';

/**
 * Insert-or-update of one small row by its key, written as UPDATE then INSERT so the same
 * code runs on SQL Server, which has no ON CONFLICT. Only for hub bookkeeping rows written
 * under the caller's transaction or lock, never for registry data.
 */
export async function saveRowByKey(
  executor: Knex | Knex.Transaction,
  table: string,
  key: Record<string, string>,
  values: Record<string, unknown>,
): Promise<void> {
  const updated = await executor(table).where(key).update(values);
  if (updated === 0) await executor(table).insert({ ...key, ...values });
}
