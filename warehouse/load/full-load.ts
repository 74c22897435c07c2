import { isoNow } from '../core/clock.ts';
import type { WarehouseRow } from '../core/warehouse-value.ts';
import { rowsPerStatement, type BulkTarget, type BulkWriter, type Dialect } from '../dialects/index.ts';
import { buildDeclaredIndexesOnNext, type PreparedIndex } from '../declared-indexes.ts';
import {
  dropStagedPersonIds,
  rebuildPersonKey,
  stageNewPersonIds,
  willFillEmptyPersonKey,
} from '../person-key.ts';
import { dropPersonTablesView, personTablesIsView, replacePersonTablesView } from '../person-tables-view.ts';
import {
  createKeyIndex,
  createNationalIdIndex,
  createRegistryTable,
  isKeyedByNationalId,
} from '../registry-tables.ts';
import { FeedDeletions } from './feed-deletions.ts';
import {
  emptyStats,
  type LoadBatch,
  type LoadContext,
  type LoadRun,
  type LoadStats,
  type StagedCounts,
} from './load-types.ts';
import { buildRejectRows, saveRejects } from './save-rejects.ts';
import { whereKeys } from './where-keys.ts';
import { inWriteTransaction } from '../write-transaction.ts';

const duplicateReason = (key: string[]) =>
  `duplicate record key (${key.join(', ')}): an earlier row of this load has it`;

interface NextTable {
  target: BulkTarget;
  suffix: string;
}

function nextTableOf(run: LoadRun): NextTable {
  const spec = run.spec;
  return {
    suffix: `r${run.id}`,
    target: {
      table: `${spec.table}__next`,
      columns: spec.columns.map((c) => c.name),
      key: spec.key,
      booleanColumns: spec.columns.flatMap((c, i) => (c.type === 'boolean' ? [i] : [])),
    },
  };
}

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
  const next = nextTableOf(run);
  const stats = emptyStats();
  try {
    await writeNextTable(ctx, run, next, batches, stats);
    run.onProgress?.(stats, 'indexing');
    await createKeyIndexResolving(ctx, run, next, () => rejectDuplicateKeys(ctx, run, next.target, stats));
    await swapIn(ctx, run, next, stats);
    return stats;
  } catch (err) {
    await ctx.knex.schema.dropTableIfExists(next.target.table).catch(() => undefined);
    throw err;
  }
}

/** Most records one streamed run may see deleted (kept in memory until its end); past it the run applies batch by batch. */
export const MAX_DELETIONS_INTO_EMPTY_TABLE = 100_000;

/** A feed deleting more records than one streamed run keeps track of. */
export class TooManyDeletions extends Error {
  constructor() {
    super(`the feed deletes more than ${MAX_DELETIONS_INTO_EMPTY_TABLE} records`);
  }
}

/**
 * A feed read out of its order (in ranges, on two threads) in which the order decides what the
 * table holds: a record sent twice, or sent and deleted. The run reads it again in order.
 */
export class FeedOrderMatters extends Error {
  constructor() {
    super('the feed sends a record more than once: it is read again in order');
  }
}

/** Deletions by key go in statements of this many records at most, whatever the binding limit. */
const DELETE_CHUNK = 500;

/**
 * An incremental run into an empty table (a connector's first run) writes like a full load,
 * streamed from the source beside the table and swapped in with the watermark, instead of
 * upserting batch by batch into indexes: the same result in about the time of a full load.
 * Every version is written in feed order; of a record's versions the last written wins, and a
 * record whose last event is a deletion is removed, as batch-by-batch application would have it.
 * Rejects are kept with the run only if it commits. A feed that deletes too many records for
 * memory stops with `TooManyDeletions` before anything is swapped in.
 *
 * A feed read out of its order (`unordered`: a source table read in ranges on two threads) gives
 * the same table as long as no record comes twice, as a row or a deletion: then there is no
 * earlier version to remove, and a deleted record was never written. The unique key index and
 * the deletions tell whether one did; if so, nothing is swapped in and `FeedOrderMatters` asks
 * for the feed in order.
 */
export async function loadIntoEmptyTable(
  ctx: LoadContext,
  run: LoadRun,
  batches: AsyncIterable<LoadBatch>,
  options: { unordered?: boolean } = {},
): Promise<LoadStats> {
  const keepLastVersions = ctx.dialect.keepLastVersions;
  if (keepLastVersions === undefined) throw new Error(`${ctx.dialect.name} has no empty-table path`);
  const unordered = options.unordered === true;
  const next = nextTableOf(run);
  const stats = emptyStats();
  const deletions = new FeedDeletions(
    next.target.key.map((k) => next.target.columns.indexOf(k)),
    MAX_DELETIONS_INTO_EMPTY_TABLE,
  );
  try {
    await writeNextTable(ctx, run, next, batches, stats, (batch) => {
      // Out of order, which row came after a deletion means nothing: only the deletions count.
      if (unordered) deletions.noteDeletions(batch.deletes);
      else deletions.note(batch);
      if (deletions.overLimit) throw new TooManyDeletions();
    });
    run.onProgress?.(stats, 'indexing');
    if (unordered) {
      await createKeyIndexOrAskForOrder(ctx, run, next);
      if ((await deleteRecords(ctx, next.target, deletions.allDeleted())) > 0) throw new FeedOrderMatters();
    } else {
      // Only a feed with several versions of a record needs the earlier ones removed.
      await createKeyIndexResolving(ctx, run, next, async () => {
        stats.inserted -= await keepLastVersions(ctx.knex, next.target);
      });
      stats.deleted = await deleteRecords(ctx, next.target, deletions.deletedAtEnd());
      stats.inserted -= stats.deleted;
    }
    await swapIn(ctx, run, next, stats, { countReplaced: false });
    return stats;
  } catch (err) {
    await ctx.knex.schema.dropTableIfExists(next.target.table).catch(() => undefined);
    await ctx
      .knex('hub_rejects')
      .where({ run_id: run.id })
      .delete()
      .catch(() => undefined);
    throw err;
  }
}

/** Deletes the records with these keys (the key index is built by then); returns how many there were. */
async function deleteRecords(ctx: LoadContext, target: BulkTarget, keys: WarehouseRow[]): Promise<number> {
  let deleted = 0;
  const chunk = Math.min(DELETE_CHUNK, rowsPerStatement(ctx.dialect, target.key.length));
  for (let i = 0; i < keys.length; i += chunk)
    deleted += await whereKeys(ctx.knex(target.table), target.key, keys.slice(i, i + chunk)).delete();
  return deleted;
}

async function writeNextTable(
  ctx: LoadContext,
  run: LoadRun,
  next: NextTable,
  batches: AsyncIterable<LoadBatch>,
  stats: LoadStats,
  onBatch: (batch: LoadBatch) => void = () => undefined,
): Promise<void> {
  await ctx.knex.schema.dropTableIfExists(next.target.table);
  await createRegistryTable(ctx.knex, run.spec, next.target.table, { indexes: false, suffix: next.suffix });
  let writer: BulkWriter | null = null;
  try {
    writer = await ctx.dialect.openBulkWriter(ctx.knex, next.target, ctx.threads, {
      inThisThread: ctx.writeInThisThread === true,
    });
    for await (const batch of batches) {
      onBatch(batch);
      const rejects = buildRejectRows(run, batch.rejects);
      if (batch.staged !== undefined) {
        if (writer.appendStaged === undefined) throw new Error(`${ctx.dialect.name} takes no stage file`);
        await writer.appendStaged(batch.staged.file, run);
        stats.inserted += batch.staged.rows;
        stats.rejected += batch.staged.rejects;
      }
      if (batch.copyText === undefined) await writer.write(batch.rows, rejects);
      else if (writer.writeCopyText !== undefined) await writer.writeCopyText(batch.copyText.bytes, rejects);
      else throw new Error(`${ctx.dialect.name} takes no COPY text`);
      stats.read += batch.read;
      stats.inserted += batch.copyText?.rows ?? batch.rows.length;
      stats.rejected += batch.rejects.length;
      run.onProgress?.(withStagedSoFar(stats, batch.stagedSoFar), 'loading');
    }
    const closing = writer;
    writer = null;
    await closing.close();
  } finally {
    await writer?.abort().catch(() => undefined);
  }
}

/** The counts a run's progress shows: its own, and what a second thread has staged so far. */
function withStagedSoFar(stats: LoadStats, staged: StagedCounts | undefined): LoadStats {
  if (staged === undefined) return stats;
  return {
    ...stats,
    read: stats.read + staged.read,
    inserted: stats.inserted + staged.rows,
    rejected: stats.rejected + staged.rejects,
  };
}

/**
 * Where the dialect renames indexes, the declared ones are built on the next table on a
 * connection of their own while the swap transaction adds the new persons; one that fails is
 * left to the build after the commit, which records its error on the run.
 */
function prepareDeclaredIndexes(ctx: LoadContext, run: LoadRun, next: NextTable): Promise<PreparedIndex[]> {
  if (ctx.dialect.renameIndex === undefined) return Promise.resolve([]);
  return buildDeclaredIndexesOnNext(ctx.knex, run.spec, next.target.table);
}

/** Indexes the national ID, then in one transaction: the person key, the old table dropped and the new one renamed, the run record. */
async function swapIn(
  ctx: LoadContext,
  run: LoadRun,
  next: NextTable,
  stats: LoadStats,
  options: { countReplaced: boolean } = { countReplaced: true },
): Promise<void> {
  const { knex, dialect } = ctx;
  const spec = run.spec;
  await createNationalIdIndex(knex, spec, next.target.table, next.suffix);
  // The new persons' insert plans with the table's statistics, unless it fills an empty person
  // key: then the analysis runs after the declared indexes, beside that insert, not before it.
  const fillsEmptyKey = await willFillEmptyPersonKey(knex);
  if (!fillsEmptyKey) await dialect.analyzeTable(knex, next.target.table);
  const nationalIdIsKey = isKeyedByNationalId(spec);
  const newIds = await stageNewPersonIds(knex, next.target.table, spec.nationalIdColumn, nationalIdIsKey);
  run.onProgress?.(stats, 'swapping');
  const declared = prepareDeclaredIndexes(ctx, run, next).then(async (indexes) => {
    if (fillsEmptyKey) await dialect.analyzeTable(knex, next.target.table);
    return indexes;
  });
  try {
    await retryOnNewPersonRace(dialect, () =>
      inWriteTransaction(knex, async (trx) => {
        const previous = (await trx.schema.hasTable(spec.table))
          ? Number((await trx(spec.table).count({ n: '*' }).first<{ n: number | string }>())?.n ?? 0)
          : 0;
        await rebuildPersonKey(
          trx,
          {
            table: spec.table,
            rowsIn: next.target.table,
            nationalIdColumn: spec.nationalIdColumn,
            firstLoad: previous === 0,
            mayFillEmptyKey: fillsEmptyKey,
            nationalIdIsKey,
            newIdsIn: newIds,
          },
          isoNow(ctx.clock),
        );
        const indexes = await declared;
        // Last, so that the view of table memberships, which every person lookup reads, is locked
        // only for the drop and the renames, not for the person key's writes.
        const view = personTablesIsView(trx);
        if (view) await dropPersonTablesView(trx);
        await trx.schema.dropTableIfExists(spec.table);
        await trx.schema.renameTable(next.target.table, spec.table);
        for (const { built, final } of indexes) await dialect.renameIndex?.(trx, built, final);
        if (view) await replacePersonTablesView(trx);
        if (options.countReplaced) stats.deleted = previous;
        await trx('hub_tables')
          .where({ name: spec.table })
          .update({ row_count: stats.inserted, loaded_at: isoNow(ctx.clock) });
        await run.commit(trx, stats);
      }),
    );
  } finally {
    // A swap that failed early must not leave the build running into the next table's drop.
    await declared.catch(() => undefined);
    if (newIds !== null) await dropStagedPersonIds(knex, newIds).catch(() => undefined);
  }
}

const SWAP_ATTEMPTS = 3;

/**
 * Two loads that commit at once may both add the same new person: the one whose insert waited on
 * the other's fails on hub_persons' key once the other commits (PostgreSQL, SQL Server; SQLite
 * has one writer). Run again, the swap sees that person and adds the rest. Nothing of a failed
 * attempt stays: it is one transaction, and the next table is untouched by it.
 */
async function retryOnNewPersonRace(dialect: Dialect, swap: () => Promise<void>): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await swap();
      return;
    } catch (err) {
      if (attempt >= SWAP_ATTEMPTS || !dialect.isUniqueViolation(err)) throw err;
    }
  }
}
/**
 * The unique record-key index, tried first; when the rows break it, `removeDuplicates` leaves
 * one row per key and the index is built again.
 */
async function createKeyIndexResolving(
  ctx: LoadContext,
  run: LoadRun,
  next: NextTable,
  removeDuplicates: () => Promise<void>,
): Promise<void> {
  try {
    await createKeyIndex(ctx.knex, run.spec, next.target.table, next.suffix);
    return;
  } catch (err) {
    if (!ctx.dialect.isUniqueViolation(err)) throw err;
  }
  await removeDuplicates();
  await createKeyIndex(ctx.knex, run.spec, next.target.table, next.suffix);
}

/** The unique record-key index of a feed read out of order; a key sent twice asks for the feed in order. */
async function createKeyIndexOrAskForOrder(ctx: LoadContext, run: LoadRun, next: NextTable): Promise<void> {
  try {
    await createKeyIndex(ctx.knex, run.spec, next.target.table, next.suffix);
  } catch (err) {
    throw ctx.dialect.isUniqueViolation(err) ? new FeedOrderMatters() : err;
  }
}

/** A full load keeps no version of a duplicated key: each is rejected with its reason. */
async function rejectDuplicateKeys(
  ctx: LoadContext,
  run: LoadRun,
  target: BulkTarget,
  stats: LoadStats,
): Promise<void> {
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
}
