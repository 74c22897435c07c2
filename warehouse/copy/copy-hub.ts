import { existsSync, realpathSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { verifyAuditChain, type AuditChainReport } from '../audit/verify-audit-chain.ts';
import { fetchCatalog } from '../catalog.ts';
import { HubError } from '../core/errors.ts';
import { buildKnexConfig, closeWarehouse, openWarehouse, redactUrl, type Warehouse } from '../db.ts';
import { dialectFor } from '../dialects/index.ts';
import { migrateWarehouse } from '../migrations/migrate.ts';
import {
  buildAppendOnlyGuards,
  buildAppendOnlyRevokes,
  buildDropAppendOnlyGuards,
} from '../audit/append-only-guards.ts';
import { rebuildPersonTables } from '../person-key.ts';
import { dropPersonTablesView, PERSON_TABLES, personTablesIsView } from '../person-tables-view.ts';
import { createRegistryIndexes, createRegistryTable } from '../registry-tables.ts';
import type { CopyDialect } from './copy-dialect.ts';
import { copyDialectFor } from './copy-dialects.ts';
import { fetchFreshHubSchema, MIGRATION_TABLES } from './fresh-hub-schema.ts';
import { buildRegistryCopySpec } from './registry-copy-spec.ts';
import { sortByReferences } from './sort-by-references.ts';

export interface CopyOptions {
  /** Replace a target that already holds a hub's data. */
  force?: boolean;
  /** Rows read and written at a time: memory stays the same whatever the table size. */
  batchRows?: number;
  onTable?: (table: CopiedTable) => void;
}

export interface CopiedTable {
  table: string;
  kind: 'hub' | 'registry';
  rows: number;
}

export interface CopyReport {
  source: string;
  target: string;
  tables: CopiedTable[];
  rows: number;
  /** Id counters moved past the copied ids, as `table.column`. */
  sequences: string[];
  /** The target's audit chain, verified after the commit. */
  audit: AuditChainReport;
}

const DEFAULT_BATCH_ROWS = 5000;
const INDEX_SUFFIX = 'v0';

/**
 * Moves a whole hub from one warehouse to another: the hub tables the target's migrations
 * create (catalog, person key, grants, clients, users, saved queries, connector state, runs and
 * rejects, the audit log, and whatever later migrations add) and every registry table in the
 * catalog with its indexes. The source is read in one snapshot; the target is written in one
 * transaction, so a failure leaves it as it was.
 */
export async function copyHub(
  sourceUrl: string,
  targetUrl: string,
  options: CopyOptions = {},
): Promise<CopyReport> {
  assertDistinct(sourceUrl, targetUrl);
  const sourceFile = sqliteFile(sourceUrl);
  if (sourceFile !== null && !existsSync(sourceFile)) throw notAHub(sourceUrl, 'the file does not exist');
  const targetFile = sqliteFile(targetUrl);
  const targetIsNew = targetFile !== null && !existsSync(targetFile);
  copyDialectFor(buildKnexConfig(sourceUrl).dialect, 'source');
  copyDialectFor(buildKnexConfig(targetUrl).dialect, 'target');

  const source = openWarehouse(sourceUrl);
  const target = openWarehouse(targetUrl);
  try {
    await assertHub(source);
    await assertReachable(target);
    return await copyWarehouse(source, target, options);
  } catch (err) {
    // A SQLite file this copy created is removed rather than left empty.
    if (targetIsNew) {
      await closeWarehouse(target).catch(() => undefined);
      await Promise.all(['', '-wal', '-shm'].map((s) => rm(`${targetFile}${s}`, { force: true })));
    }
    throw err;
  } finally {
    await closeWarehouse(source);
    await closeWarehouse(target).catch(() => undefined);
  }
}

export async function copyWarehouse(
  source: Warehouse,
  target: Warehouse,
  options: CopyOptions = {},
): Promise<CopyReport> {
  const from = copyDialectFor(source.dialect, 'source');
  const to = copyDialectFor(target.dialect, 'target');
  const batchRows = options.batchRows ?? DEFAULT_BATCH_ROWS;
  const fresh = await fetchFreshHubSchema();
  await migrateWarehouse(source.knex);

  const tables: CopiedTable[] = [];
  const record = (copied: CopiedTable) => {
    tables.push(copied);
    options.onTable?.(copied);
  };
  const sequences = await from.readSnapshot(source.knex, async (snapshot) => {
    await from.holdAsSource(snapshot);
    return target.knex.transaction(async (trx) => {
      await dialectFor(target.dialect).lockUntilCommit(trx, 'hub_copy');
      if (await to.isHeldAsSource(trx)) {
        throw new HubError(
          'invalid_request',
          400,
          `the target ${target.displayUrl} is the source, or the source of another copy running now`,
        );
      }
      const held = await describeHeldData(trx, to, fresh);
      if (held.length > 0 && options.force !== true) {
        throw new HubError(
          'target_not_empty',
          409,
          `the target ${target.displayUrl} already holds data (${describeList(held)}); use --force to replace it`,
        );
      }
      const catalog = await fetchCatalog(snapshot);
      // A view over the registry tables (PostgreSQL's table memberships) would keep them from being dropped.
      if (personTablesIsView(trx)) await dropPersonTablesView(trx);
      await dropReplacedRegistryTables(
        trx,
        to,
        fresh,
        catalog.map((t) => t.name),
      );
      await migrateWarehouse(trx);

      const hubTables = sortByReferences(
        (await to.fetchTableNames(trx)).filter((t) => fresh.has(t)),
        await to.fetchReferences(trx),
      );
      // The migrations' own seeds (a grants version, fresh keys) give way to the source's rows;
      // with --force the replaced hub's audit log goes too, so its append-only guards are lifted
      // for this one transaction and put back before it commits.
      const guardsDialect = dialectFor(target.dialect).name;
      if (held.length > 0) for (const sql of buildDropAppendOnlyGuards(guardsDialect)) await trx.raw(sql);
      for (const table of [...hubTables].reverse()) await trx(table).delete();
      if (held.length > 0) {
        for (const sql of buildAppendOnlyGuards(guardsDialect)) await trx.raw(sql);
        // As migration 004: a role that does not own the tables cannot revoke; the triggers still hold.
        for (const sql of buildAppendOnlyRevokes(guardsDialect))
          await trx.raw(
            `DO $$ BEGIN EXECUTE '${sql.replace(/'/g, "''")}'; EXCEPTION WHEN insufficient_privilege THEN NULL; END $$`,
          );
      }
      const sourceTables = new Set(await from.fetchTableNames(snapshot));
      for (const table of hubTables) {
        // Table memberships are derived from the registry rows once those are in (a view on some targets).
        if (!sourceTables.has(table) || table === PERSON_TABLES) continue;
        const sourceColumns = new Set((await from.fetchColumns(snapshot, table)).map((c) => c.name));
        const columns = (await to.fetchColumns(trx, table))
          .map((c) => c.name)
          .filter((c) => sourceColumns.has(c));
        record({
          table,
          kind: 'hub',
          rows: await copyRows(from, snapshot, to, trx, table, columns, batchRows),
        });
      }

      for (const table of catalog) {
        const physical = sourceTables.has(table.name) ? await from.fetchColumns(snapshot, table.name) : [];
        const spec = buildRegistryCopySpec(table, physical);
        // Indexes are built once, after the rows, as a full load builds them.
        await createRegistryTable(trx, spec, table.name, { indexes: false, suffix: INDEX_SUFFIX });
        const columns = spec.columns.map((c) => c.name);
        const rows =
          physical.length === 0 ? 0 : await copyRows(from, snapshot, to, trx, table.name, columns, batchRows);
        await createRegistryIndexes(trx, spec, table.name, INDEX_SUFFIX);
        await dialectFor(target.dialect).analyzeTable(trx, table.name);
        record({ table: table.name, kind: 'registry', rows });
      }
      await rebuildPersonTables(trx, catalog);
      return to.resetSequences(trx, [...hubTables, ...catalog.map((t) => t.name)]);
    });
  });
  const audit = await verifyAuditChain(target.knex);
  return {
    source: source.displayUrl,
    target: target.displayUrl,
    tables,
    rows: tables.reduce((sum, t) => sum + t.rows, 0),
    sequences,
    audit,
  };
}

async function copyRows(
  from: CopyDialect,
  snapshot: Knex.Transaction,
  to: CopyDialect,
  trx: Knex.Transaction,
  table: string,
  columns: string[],
  batchRows: number,
): Promise<number> {
  const writer = await to.openRowWriter(trx, table, columns);
  let rows = 0;
  try {
    for await (const batch of from.readRows(snapshot, table, columns, batchRows)) {
      await writer.write(batch);
      rows += batch.length;
    }
    await writer.close();
  } catch (err) {
    await writer.abort();
    // The driver's message names the value, not where it was.
    throw new HubError(
      'copy_failed',
      400,
      `copying ${table}: ${err instanceof Error ? err.message : String(err)}; the target is left as it was`,
    );
  }
  return rows;
}

/**
 * What makes a target more than a freshly migrated hub: a table the hub's migrations do not
 * create, or a hub table with more rows than the migrations seed.
 */
async function describeHeldData(
  trx: Knex.Transaction,
  to: CopyDialect,
  fresh: Map<string, number>,
): Promise<string[]> {
  const held: string[] = [];
  for (const table of await to.fetchTableNames(trx)) {
    if (MIGRATION_TABLES.has(table)) continue;
    const seeded = fresh.get(table);
    if (seeded === undefined) {
      held.push(`table ${table}`);
      continue;
    }
    const row = await trx
      .from(
        trx(table)
          .select(trx.raw('1 AS one'))
          .limit(seeded + 1)
          .as('t'),
      )
      .count<Array<{ n: number | string }>>({ n: '*' });
    if (Number(row[0]?.n ?? 0) > seeded) held.push(`rows in ${table}`);
  }
  return held;
}

/** With --force, the registry tables of the hub being replaced go, and so do tables in the way of the copied ones. */
async function dropReplacedRegistryTables(
  trx: Knex.Transaction,
  to: CopyDialect,
  fresh: Map<string, number>,
  copied: string[],
): Promise<void> {
  const existing = new Set(await to.fetchTableNames(trx));
  const replaced = existing.has('hub_tables') ? await trx('hub_tables').pluck<string[]>('name') : [];
  for (const table of new Set([...replaced, ...copied])) {
    if (existing.has(table) && !fresh.has(table) && !MIGRATION_TABLES.has(table))
      await trx.schema.dropTable(table);
  }
}

const describeList = (items: string[], shown = 4) =>
  items.length <= shown
    ? items.join(', ')
    : `${items.slice(0, shown).join(', ')} and ${items.length - shown} more`;

function sqliteFile(url: string): string | null {
  const { config, dialect } = buildKnexConfig(url);
  if (dialect !== 'sqlite') return null;
  const filename = (config.connection as { filename: string }).filename;
  if (filename === ':memory:') return null;
  // The same file by another path (a symbolic link, ./ and ../) is still the same file.
  const resolved = path.resolve(filename);
  return existsSync(resolved) ? realpathSync(resolved) : resolved;
}

function assertDistinct(sourceUrl: string, targetUrl: string): void {
  const same = (sqliteFile(sourceUrl) ?? sourceUrl) === (sqliteFile(targetUrl) ?? targetUrl);
  if (same)
    throw new HubError(
      'invalid_request',
      400,
      `the source and the target are the same warehouse (${redactUrl(targetUrl)})`,
    );
}

const notAHub = (url: string, why: string) =>
  new HubError('not_a_hub', 400, `the source ${redactUrl(url)} is not a Registry Hub warehouse: ${why}`);

async function assertHub(source: Warehouse): Promise<void> {
  let tables: string[];
  try {
    tables = await copyDialectFor(source.dialect, 'source').fetchTableNames(source.knex);
  } catch (err) {
    throw notAHub(source.displayUrl, err instanceof Error ? err.message : String(err));
  }
  const missing = ['hub_migrations', 'hub_tables'].filter((t) => !tables.includes(t));
  if (missing.length > 0) throw notAHub(source.displayUrl, `it has no ${missing.join(' or ')} table`);
}

async function assertReachable(target: Warehouse): Promise<void> {
  try {
    await target.knex.raw('SELECT 1');
  } catch (err) {
    throw new HubError(
      'target_unreachable',
      400,
      `cannot open the target ${target.displayUrl}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}
