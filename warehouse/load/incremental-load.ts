import type { Knex } from 'knex';
import { isoNow } from '../core/clock.ts';
import type { WarehouseRow, WarehouseValue } from '../core/warehouse-value.ts';
import { rowsPerStatement, withFullLoadSettings, type BulkTarget, type Dialect } from '../dialects/index.ts';
import { updatePersonKeyForIds } from '../person-key.ts';
import {
  emptyStats,
  type LoadBatch,
  type LoadContext,
  type LoadFeed,
  type LoadRun,
  type LoadStats,
} from './load-types.ts';
import { CHANGE_APPLIERS } from './apply-changes.ts';
import { FeedOrderMatters, loadIntoEmptyTable, TooManyDeletions } from './full-load.ts';
import { buildKeyText } from './feed-deletions.ts';
import { whereKeys } from './where-keys.ts';
import { saveRejects } from './save-rejects.ts';
import { spoolBatches } from './spool-batches.ts';
import { inWriteTransaction } from '../write-transaction.ts';

/** Key lookups and deletes go in statements of this many records at most, whatever the binding limit. */
const KEY_CHUNK = 500;

/**
 * Incremental load (CDC): only what changed since the watermark is upserted by record key and
 * deleted, all in one transaction with the new watermark, so a failed run changes nothing and
 * the next run starts from the same point. The source is read to the end (into a spool file)
 * before that transaction opens: the write side is held for the apply alone, never while a
 * registry answers slowly. A run into an empty table (a connector's first) streams like a full
 * load instead; `readFeed` opens the feed, and is called again only if that run hands over to
 * the batch path. `readUnordered`, where given, opens the same records out of their order and
 * faster (a source table read in ranges on two threads; `writeInThisThread` as for a full load):
 * tried first into an empty table, it hands over to the feed in order when the order turns out
 * to matter (FeedOrderMatters).
 */
export async function loadIncremental(
  ctx: LoadContext,
  run: LoadRun,
  readFeed: () => AsyncIterable<LoadBatch>,
  readUnordered?: () => LoadFeed,
): Promise<LoadStats> {
  // SQL Server keeps the batch path: it cannot tell which of a record's versions came last.
  if (ctx.dialect.keepLastVersions !== undefined && (await isEmpty(ctx, run.spec.table))) {
    try {
      return await withFullLoadSettings(
        ctx.dialect,
        ctx.knex,
        async () => {
          if (readUnordered !== undefined) {
            try {
              const { batches, writeInThisThread } = readUnordered();
              return await loadIntoEmptyTable({ ...ctx, writeInThisThread }, run, batches, {
                unordered: true,
              });
            } catch (err) {
              if (!(err instanceof FeedOrderMatters)) throw err;
            }
          }
          return loadIntoEmptyTable(ctx, run, readFeed());
        },
        ctx.threads,
      );
    } catch (err) {
      if (!(err instanceof TooManyDeletions)) throw err;
    }
  }
  const stats = emptyStats();
  const seenAt = isoNow(ctx.clock);
  const spool = await spoolBatches(countReads(readFeed(), stats, run));
  try {
    await applyChanges(ctx, run, spool.batches, stats, seenAt);
  } finally {
    await spool.close();
  }
  return stats;
}

/** Source records are counted as they reach the spool, so a long read shows its progress before the apply. */
async function* countReads(
  batches: AsyncIterable<LoadBatch>,
  stats: LoadStats,
  run: LoadRun,
): AsyncIterable<LoadBatch> {
  for await (const batch of batches) {
    stats.read += batch.read;
    run.onProgress?.(stats, 'reading');
    yield batch;
  }
}

/** Only this connector writes its table, and it holds the connector's lock: the answer holds until the run commits. */
async function isEmpty(ctx: LoadContext, table: string): Promise<boolean> {
  return (await ctx.knex(table).first(ctx.knex.raw('1 as one'))) === undefined;
}

async function applyChanges(
  ctx: LoadContext,
  run: LoadRun,
  batches: AsyncIterable<LoadBatch>,
  stats: LoadStats,
  seenAt: string,
): Promise<void> {
  const spec = run.spec;
  const target: BulkTarget = { table: spec.table, columns: spec.columns.map((c) => c.name), key: spec.key };
  const keyIndexes = spec.key.map((k) => target.columns.indexOf(k));
  const nidIndex = target.columns.indexOf(spec.nationalIdColumn);
  const applier = CHANGE_APPLIERS[ctx.dialect.name];
  await inWriteTransaction(ctx.knex, async (trx) => {
    for await (const batch of batches) {
      stats.rejected += batch.rejects.length;
      await saveRejects(trx, run, batch.rejects);

      const rows = keepLastPerKey(batch.rows, keyIndexes);
      if (applier !== undefined) {
        const changes = { ...target, nationalIdColumn: spec.nationalIdColumn };
        const applied = await applier(trx, changes, { rows, deletes: batch.deletes }, seenAt);
        stats.inserted += applied.inserted;
        stats.updated += applied.updated;
        stats.deleted += applied.deleted;
        run.onProgress?.(stats, 'applying');
        await new Promise<void>((resolve) => setImmediate(resolve));
        continue;
      }
      const existing = await countExistingKeys(
        trx,
        ctx.dialect,
        target,
        rows.map((r) => keyIndexes.map((i) => r[i] ?? null)),
      );
      await upsertRows(trx, ctx.dialect, target, rows);
      stats.updated += existing;
      stats.inserted += rows.length - existing;

      const removedIds = await deleteByKeys(trx, ctx.dialect, target, spec.nationalIdColumn, batch.deletes);
      stats.deleted += removedIds.length;

      const touched = [...rows.map((r) => String(r[nidIndex])), ...removedIds];
      await updatePersonKeyForIds(trx, spec.table, spec.nationalIdColumn, touched, seenAt, KEY_CHUNK);
      run.onProgress?.(stats, 'applying');
      // Read back from the local spool, batches never wait on I/O: let API requests in between.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await trx('hub_tables')
      .where({ name: spec.table })
      .update({
        row_count: trx.raw('row_count + ?', [stats.inserted - stats.deleted]),
        loaded_at: isoNow(ctx.clock),
      });
    await run.commit(trx, stats);
  });
}

/** A record changed twice since the last run arrives twice; the later version wins. */
function keepLastPerKey(rows: WarehouseRow[], keyIndexes: number[]): WarehouseRow[] {
  const byKey = new Map<string, WarehouseRow>();
  for (const row of rows) byKey.set(buildKeyText(keyIndexes.map((i) => row[i] ?? null)), row);
  return byKey.size === rows.length ? rows : [...byKey.values()];
}

async function countExistingKeys(
  trx: Knex.Transaction,
  dialect: Dialect,
  target: BulkTarget,
  keys: WarehouseValue[][],
) {
  let found = 0;
  const chunk = Math.min(KEY_CHUNK, rowsPerStatement(dialect, target.key.length));
  for (let i = 0; i < keys.length; i += chunk) {
    const result = await whereKeys(trx(target.table), target.key, keys.slice(i, i + chunk))
      .count({ n: '*' })
      .first<{ n: number | string }>();
    found += Number(result?.n ?? 0);
  }
  return found;
}

async function upsertRows(trx: Knex.Transaction, dialect: Dialect, target: BulkTarget, rows: WarehouseRow[]) {
  const size = rowsPerStatement(dialect, target.columns.length * 2);
  for (let i = 0; i < rows.length; i += size) await dialect.buildUpsert(trx, target, rows.slice(i, i + size));
}

/** Returns the national IDs of the rows it deleted, for the person key. */
async function deleteByKeys(
  trx: Knex.Transaction,
  dialect: Dialect,
  target: BulkTarget,
  nationalIdColumn: string,
  keys: WarehouseRow[],
) {
  const removed: string[] = [];
  const size = Math.min(KEY_CHUNK, rowsPerStatement(dialect, target.key.length));
  for (let i = 0; i < keys.length; i += size) {
    const chunk = keys.slice(i, i + size);
    const ids = await whereKeys(trx(target.table), target.key, chunk).pluck<string[]>(nationalIdColumn);
    if (ids.length === 0) continue;
    await whereKeys(trx(target.table), target.key, chunk).delete();
    removed.push(...ids.map(String));
  }
  return removed;
}
