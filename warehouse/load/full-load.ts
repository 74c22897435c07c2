import { isoNow } from '../core/clock.ts';
import type { WarehouseRow } from '../core/warehouse-value.ts';
import type { BulkTarget, BulkWriter } from '../dialects/index.ts';
import { rebuildPersonKeyForTable } from '../person-key.ts';
import { createKeyIndex, createNationalIdIndex, createRegistryTable } from '../registry-tables.ts';
import { emptyStats, type LoadBatch, type LoadContext, type LoadRun, type LoadStats } from './load-types.ts';
import { buildRejectRows, saveRejects } from './save-rejects.ts';

const duplicateReason = (key: string[]) =>
  `duplicate record key (${key.join(', ')}): an earlier row of this load has it`;

/**
 * Full load (ETL): the next version of the table is built beside the current one and swapped
 * in with one transaction, so a reader sees the old content or the new, never a mix, and a
 * failure anywhere before the swap leaves the warehouse exactly as it was.
 */
export async function loadFull(
  ctx: LoadContext,
  run: LoadRun,
  batches: AsyncIterable<LoadBatch>,
): Promise<LoadStats> {
  const { knex, dialect } = ctx;
  const spec = run.spec;
  const next = `${spec.table}__next`;
  const suffix = `r${run.id}`;
  const target: BulkTarget = {
    table: next,
    columns: spec.columns.map((c) => c.name),
    key: spec.key,
    booleanColumns: spec.columns.flatMap((c, i) => (c.type === 'boolean' ? [i] : [])),
  };
  const stats = emptyStats();

  await knex.schema.dropTableIfExists(next);
  await createRegistryTable(knex, spec, next, { indexes: false, suffix });
  let writer: BulkWriter | null = null;
  try {
    writer = await dialect.openBulkWriter(knex, target);
    for await (const batch of batches) {
      await writer.write(batch.rows, buildRejectRows(run, batch.rejects));
      stats.read += batch.read;
      stats.inserted += batch.rows.length;
      stats.rejected += batch.rejects.length;
      run.onProgress?.(stats, 'loading');
    }
    await writer.close();
    writer = null;
    run.onProgress?.(stats, 'indexing');
    await createUniqueKeyRemovingDuplicates(ctx, run, target, suffix, stats);
    await createNationalIdIndex(knex, spec, next, suffix);
    await dialect.analyzeTable(knex, next);
    run.onProgress?.(stats, 'swapping');

    await knex.transaction(async (trx) => {
      const previous = (await trx.schema.hasTable(spec.table))
        ? Number((await trx(spec.table).count({ n: '*' }).first<{ n: number | string }>())?.n ?? 0)
        : 0;
      await trx.schema.dropTableIfExists(spec.table);
      await trx.schema.renameTable(next, spec.table);
      await rebuildPersonKeyForTable(trx, spec.table, spec.nationalIdColumn, isoNow(ctx.clock));
      stats.deleted = previous;
      await trx('hub_tables')
        .where({ name: spec.table })
        .update({ row_count: stats.inserted, loaded_at: isoNow(ctx.clock) });
      await run.commit(trx, stats);
    });
    return stats;
  } catch (err) {
    await writer?.abort().catch(() => undefined);
    await knex.schema.dropTableIfExists(next).catch(() => undefined);
    throw err;
  }
}

async function createUniqueKeyRemovingDuplicates(
  ctx: LoadContext,
  run: LoadRun,
  target: BulkTarget,
  suffix: string,
  stats: LoadStats,
): Promise<void> {
  try {
    await createKeyIndex(ctx.knex, run.spec, target.table, suffix);
    return;
  } catch (err) {
    if (!ctx.dialect.isUniqueViolation(err)) throw err;
  }
  const duplicates: WarehouseRow[] = await ctx.dialect.removeDuplicateKeys(ctx.knex, target);
  const keyIndexes = run.spec.key.map((k) => target.columns.indexOf(k));
  await saveRejects(
    ctx.knex,
    run,
    duplicates.map((row) => ({
      sourceKey: keyIndexes.map((i) => String(row[i] ?? '')).join('|'),
      reason: duplicateReason(run.spec.key),
      raw: Object.fromEntries(target.columns.map((c, i) => [c, row[i] ?? null])),
    })),
  );
  stats.inserted -= duplicates.length;
  stats.rejected += duplicates.length;
  await createKeyIndex(ctx.knex, run.spec, target.table, suffix);
}
