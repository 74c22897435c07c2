import type { Knex } from 'knex';
import { dialectOf } from './dialects/index.ts';
import { personTablesIsView, replacePersonTablesView } from './person-tables-view.ts';

/** A registry table's part of the person key, rebuilt by a full load before its swap. */
export interface PersonKeyRebuild {
  /** The registry table, as the membership names it. */
  table: string;
  /** The table holding the load's rows now (the next version, swapped in after). */
  rowsIn: string;
  nationalIdColumn: string;
  /** The table held no rows before this load: every ID is new to it. */
  firstLoad: boolean;
  /**
   * The person key was empty when probed before the swap (`willFillEmptyPersonKey`): the swap
   * then takes the key's exclusive lock before reading it, and fills it without its primary key
   * if it is still empty.
   */
  mayFillEmptyKey?: boolean;
  /**
   * The national ID is the table's record key, so `rowsIn` holds each ID once (its key's unique
   * index is built before the swap): its IDs are read without DISTINCT, which made PostgreSQL
   * sort or hash every ID of the table once more for nothing.
   */
  nationalIdIsKey?: boolean;
  /**
   * SQLite: a temporary table of the IDs of `rowsIn` the person key lacked when read before the
   * swap (`stageNewPersonIds`); only those are inserted.
   */
  newIdsIn?: string | null;
}

/** Reads each national ID of a table once: plainly where it is the table's unique key, else through DISTINCT. */
const selectIds = (nationalIdIsKey: boolean) => (nationalIdIsKey ? 'SELECT' : 'SELECT DISTINCT');

/**
 * The centre of the star: one row per national ID ever seen (hub_persons) and which registry
 * tables hold it now (hub_person_tables; a view over the registry tables where the dialect has
 * one, see person-tables-view.ts, and then nothing to write). Set-based statements written once
 * for every database: NOT EXISTS instead of each vendor's upsert syntax, but for SQLite's new persons.
 */
export async function rebuildPersonKey(
  trx: Knex.Transaction,
  rebuild: PersonKeyRebuild,
  seenAt: string,
): Promise<void> {
  const {
    table,
    rowsIn,
    nationalIdColumn,
    firstLoad,
    mayFillEmptyKey = false,
    nationalIdIsKey = false,
  } = rebuild;
  const membership = !personTablesIsView(trx);
  if (membership) {
    // On a table's first load there is nothing to compare against: every ID is new to it.
    if (firstLoad) await insertMemberships(trx, table, rowsIn, nationalIdColumn, nationalIdIsKey);
    else await applyMembershipDifference(trx, table, rowsIn, nationalIdColumn, nationalIdIsKey);
  }
  if (rebuild.newIdsIn != null)
    await trx.raw(
      'INSERT OR IGNORE INTO hub_persons (national_id, first_seen_at) SELECT national_id, ? FROM ??',
      [seenAt, rebuild.newIdsIn],
    );
  else await insertNewPersons(trx, rowsIn, nationalIdColumn, seenAt, { mayFillEmptyKey, nationalIdIsKey });
  if (firstLoad) {
    // The key grew by a whole registry at once. Planned from the statistics of before, PostgreSQL
    // computed the next reload's anti-joins against it as nested loops of index probes instead
    // of hash joins: 2.6 s against 0.7 s at 1,000,000 persons, before autovacuum caught up.
    for (const keyTable of membership ? ['hub_person_tables', 'hub_persons'] : ['hub_persons'])
      await dialectOf(trx).analyzeTable(trx, keyTable);
  }
}

/** Brings the person key in line with a registry table's rows as they are, whatever they were. */
export async function rebuildPersonKeyForTable(
  trx: Knex.Transaction,
  table: string,
  nationalIdColumn: string,
  seenAt: string,
): Promise<void> {
  await rebuildPersonKey(trx, { table, rowsIn: table, nationalIdColumn, firstLoad: false }, seenAt);
}

/** Table memberships derived again from the rows of every registry table listed (a copied hub's). */
export async function rebuildPersonTables(
  trx: Knex.Transaction,
  tables: ReadonlyArray<{ name: string; nationalIdColumn: string }>,
): Promise<void> {
  if (personTablesIsView(trx)) {
    await replacePersonTablesView(trx);
    return;
  }
  await trx('hub_person_tables').delete();
  for (const { name, nationalIdColumn } of tables) await insertMemberships(trx, name, name, nationalIdColumn);
}

/** Lists every national ID of `rowsIn` as held by `table`, where no membership of that table is listed yet. */
export async function insertMemberships(
  executor: Knex | Knex.Transaction,
  table: string,
  rowsIn: string,
  nationalIdColumn: string,
  nationalIdIsKey = false,
): Promise<void> {
  await executor.raw(
    `INSERT INTO hub_person_tables (national_id, table_name) ${selectIds(nationalIdIsKey)} t.??, ? FROM ?? t WHERE t.?? IS NOT NULL`,
    [nationalIdColumn, table, rowsIn, nationalIdColumn],
  );
}

async function insertNewPersons(
  trx: Knex.Transaction,
  table: string,
  nationalIdColumn: string,
  seenAt: string,
  { mayFillEmptyKey, nationalIdIsKey }: { mayFillEmptyKey: boolean; nationalIdIsKey: boolean },
): Promise<void> {
  const ids = {
    sql: `${selectIds(nationalIdIsKey)} t.??, ? FROM ?? t WHERE t.?? IS NOT NULL`,
    bindings: [nationalIdColumn, seenAt, table, nationalIdColumn],
  };
  if (dialectOf(trx).name === 'sqlite') {
    // One probe of hub_persons per ID, the insert's own, where NOT EXISTS made a second: a first
    // load of 1,000,000 persons wrote its new persons in 0.2 s instead of 0.47 s.
    await trx.raw(`INSERT OR IGNORE INTO hub_persons (national_id, first_seen_at) ${ids.sql}`, ids.bindings);
    return;
  }
  const insertAll = async () =>
    void (await trx.raw(`INSERT INTO hub_persons (national_id, first_seen_at) ${ids.sql}`, ids.bindings));
  if (mayFillEmptyKey && (await fillEmptyPersonKey(trx, insertAll))) return;
  await trx.raw(
    `INSERT INTO hub_persons (national_id, first_seen_at) ${ids.sql} ` +
      'AND NOT EXISTS (SELECT 1 FROM hub_persons p WHERE p.national_id = t.??)',
    [...ids.bindings, nationalIdColumn],
  );
}

/**
 * SQLite: copies the IDs of `rowsIn` that the person key does not hold yet into a table of the
 * connection's temporary database, and names it (null elsewhere, and where the key is empty and
 * every ID would be copied). Reading the key takes no write lock in WAL mode, nor does writing
 * the temporary database, so the swap's transaction inserts just these: on a reload of 1,000,000
 * persons, probing the key for every ID inside the swap held the file's one write lock for
 * 0.4–0.6 s, while every answer's audit append waited. The key only grows, so an ID it held at
 * this read it still holds at the swap; one another load adds meanwhile is ignored by the insert.
 * The caller drops the table (`dropStagedPersonIds`).
 */
export async function stageNewPersonIds(
  knex: Knex,
  rowsIn: string,
  nationalIdColumn: string,
  nationalIdIsKey: boolean,
): Promise<string | null> {
  if (dialectOf(knex).name !== 'sqlite' || (await personKeyIsEmpty(knex))) return null;
  const staged = `temp.${rowsIn}_new_persons`;
  await dropStagedPersonIds(knex, staged);
  await knex.raw(
    `CREATE TEMP TABLE ?? AS ${selectIds(nationalIdIsKey)} t.?? AS national_id FROM ?? t ` +
      'WHERE t.?? IS NOT NULL AND NOT EXISTS (SELECT 1 FROM hub_persons p WHERE p.national_id = t.??)',
    [staged.slice('temp.'.length), nationalIdColumn, rowsIn, nationalIdColumn, nationalIdColumn],
  );
  return staged;
}

export async function dropStagedPersonIds(knex: Knex, staged: string): Promise<void> {
  await knex.raw('DROP TABLE IF EXISTS ??', [staged]);
}

const personKeyIsEmpty = async (executor: Knex | Knex.Transaction) =>
  (await executor('hub_persons').select('national_id').limit(1)).length === 0;

/**
 * Whether a load's new persons will go into an empty person key by `fillEmptyPersonKey`, as far
 * as can be told before its swap (another load may fill the key first): that insert compares with
 * nothing, so it plans without the next table's statistics. The swap is told the answer
 * (`mayFillEmptyKey`) rather than reading the key again before its lock.
 */
export async function willFillEmptyPersonKey(knex: Knex): Promise<boolean> {
  return dialectOf(knex).fillWithoutPrimaryKey !== undefined && (await personKeyIsEmpty(knex));
}

/**
 * When the person key is empty (a hub's first registry load), where the dialect can: the rows go
 * in without the primary key, which is then built by one sort, as a bulk load builds an index,
 * instead of a million insertions into it. On PostgreSQL at 1,000,000 persons, beside the declared
 * indexes' build, 1.5–1.7 s for the rows and 0.5–0.7 s for the key, against 2.4–2.8 s for the rows
 * inserted into the key. The table stays locked to the end of the transaction; only loads and the
 * status page read it. Returns false, having written nothing and released the lock, when the key
 * holds anyone: another load's persons too, once this one has waited for its lock.
 */
async function fillEmptyPersonKey(trx: Knex.Transaction, insertAll: () => Promise<void>): Promise<boolean> {
  const fillWithoutPrimaryKey = dialectOf(trx).fillWithoutPrimaryKey;
  if (fillWithoutPrimaryKey === undefined) return false;
  // The key is read only once its exclusive lock is held. Two first loads whose swaps each read
  // it first held a share lock each to the end of their transactions, then both asked for the
  // exclusive one and waited for each other: PostgreSQL ended one of them as a deadlock.
  return fillWithoutPrimaryKey(trx, 'hub_persons', () => personKeyIsEmpty(trx), insertAll);
}

async function applyMembershipDifference(
  trx: Knex.Transaction,
  table: string,
  rowsIn: string,
  nationalIdColumn: string,
  nationalIdIsKey: boolean,
) {
  // Applied as a difference, not delete-all-and-insert: a nightly reload of a registry changes
  // few memberships, and both sides are indexed on the national ID.
  await trx.raw(
    'DELETE FROM hub_person_tables WHERE table_name = ? AND NOT EXISTS (SELECT 1 FROM ?? t WHERE t.?? = hub_person_tables.national_id)',
    [table, rowsIn, nationalIdColumn],
  );
  await trx.raw(
    `INSERT INTO hub_person_tables (national_id, table_name) ${selectIds(nationalIdIsKey)} t.??, ? FROM ?? t WHERE t.?? IS NOT NULL ` +
      'AND NOT EXISTS (SELECT 1 FROM hub_person_tables pt WHERE pt.table_name = ? AND pt.national_id = t.??)',
    [nationalIdColumn, table, rowsIn, nationalIdColumn, table, nationalIdColumn],
  );
}

/** After an incremental batch: the IDs it wrote join the star, the IDs it deleted leave the table's membership when no row is left. */
export async function updatePersonKeyForIds(
  trx: Knex.Transaction,
  table: string,
  nationalIdColumn: string,
  nationalIds: string[],
  seenAt: string,
  chunkSize: number,
): Promise<void> {
  const membership = !personTablesIsView(trx);
  const unique = [...new Set(nationalIds)];
  for (let i = 0; i < unique.length; i += chunkSize) {
    const ids = unique.slice(i, i + chunkSize);
    if (membership) {
      await trx('hub_person_tables')
        .where({ table_name: table })
        .whereIn('national_id', ids)
        .whereNotExists(
          trx(table).select(trx.raw('1')).where(nationalIdColumn, trx.ref('hub_person_tables.national_id')),
        )
        .delete();
    }
    const held = await trx(table)
      .distinct(nationalIdColumn)
      .whereIn(nationalIdColumn, ids)
      .pluck<string[]>(nationalIdColumn);
    if (held.length === 0) continue;
    if (membership) await addMembers(trx, table, held);
    await dialectOf(trx).insertMissingPersons(trx, held, seenAt);
  }
}

async function addMembers(trx: Knex.Transaction, table: string, held: string[]): Promise<void> {
  const listed = new Set(
    await trx('hub_person_tables')
      .where({ table_name: table })
      .whereIn('national_id', held)
      .pluck<string[]>('national_id'),
  );
  const newMembers = held.filter((id) => !listed.has(id));
  if (newMembers.length > 0) {
    await trx('hub_person_tables').insert(
      newMembers.map((national_id) => ({ national_id, table_name: table })),
    );
  }
}
