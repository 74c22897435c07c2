import type { Knex } from 'knex';
import type { WarehouseRow, WarehouseValue } from '../core/warehouse-value.ts';
import { insertRejectRows, type RejectRow } from '../load/save-rejects.ts';
import { insertInChunks, rowsPerStatement, type BulkTarget, type Dialect } from './dialect.ts';

/**
 * SQL Server has no ON CONFLICT: an upsert is a MERGE over a VALUES list. Identifiers go
 * through knex's ?? bindings (bracket-quoted), values through ? bindings.
 */
export function buildMssqlMerge(
  executor: Knex | Knex.Transaction,
  target: BulkTarget,
  rows: WarehouseRow[],
): Knex.Raw {
  const columns = target.columns;
  const updates = columns.filter((c) => !target.key.includes(c));
  const values = rows.map(() => `(${columns.map(() => '?').join(', ')})`).join(', ');
  const on = target.key.map(() => 't.?? = s.??').join(' AND ');
  const set = updates.map(() => 't.?? = s.??').join(', ');
  const sql =
    `MERGE INTO ?? WITH (HOLDLOCK) AS t USING (VALUES ${values}) AS s (${columns.map(() => '??').join(', ')}) ON ${on}` +
    (updates.length > 0 ? ` WHEN MATCHED THEN UPDATE SET ${set}` : '') +
    ` WHEN NOT MATCHED THEN INSERT (${columns.map(() => '??').join(', ')}) VALUES (${columns.map(() => 's.??').join(', ')});`;
  const bindings: Array<WarehouseValue> = [
    target.table,
    ...rows.flatMap((r) => r.map((v) => (typeof v === 'boolean' ? (v ? 1 : 0) : v))),
    ...columns,
    ...target.key.flatMap((k) => [k, k]),
    ...updates.flatMap((c) => [c, c]),
    ...columns,
    ...columns,
  ];
  return executor.raw(sql, bindings as Knex.RawBinding[]);
}

/**
 * SQL Server has no ON CONFLICT, and under READ COMMITTED (with or without row versioning) a
 * NOT EXISTS alone does not see another transaction's uncommitted person, whose insert then
 * fails on the key once that one commits. UPDLOCK, HOLDLOCK keep a key-range lock on each ID
 * probed to the end of the transaction: the second transaction waits at its probe, then finds
 * the person. `ids` must leave one binding for `seenAt` (see MSSQL_MAX_MISSING_PERSONS).
 */
export function buildMssqlMissingPersonsInsert(
  executor: Knex | Knex.Transaction,
  ids: string[],
  seenAt: string,
): Knex.Raw {
  return executor.raw(
    `INSERT INTO [hub_persons] ([national_id], [first_seen_at]) SELECT v.[id], ? FROM (VALUES ${ids.map(() => '(?)').join(', ')}) AS v ([id]) ` +
      'WHERE NOT EXISTS (SELECT 1 FROM [hub_persons] AS p WITH (UPDLOCK, HOLDLOCK) WHERE p.[national_id] = v.[id])',
    [seenAt, ...ids],
  );
}

/** SQL Server takes at most 2100 parameters per request; keep a margin for the statement's own. */
const MSSQL_MAX_BINDINGS = 2000;

/** IDs one missing-persons insert takes: the parameter limit, less `seenAt`. */
export const MSSQL_MAX_MISSING_PERSONS = MSSQL_MAX_BINDINGS - 1;

/** INSERT ... VALUES takes at most 1000 rows on SQL Server (error 10738), however few parameters they have. */
export const MSSQL_MAX_INSERT_ROWS = 1000;

export const mssqlDialect: Dialect = {
  name: 'mssql',
  maxBindings: MSSQL_MAX_BINDINGS,
  maxInsertRows: MSSQL_MAX_INSERT_ROWS,
  auditGatherMs: 0,

  openBulkWriter(knex, target) {
    return Promise.resolve({
      write: async (rows: WarehouseRow[], rejects: RejectRow[] = []) => {
        await knex.transaction(async (trx) => {
          await insertInChunks(trx, mssqlDialect, target, rows);
          await insertRejectRows(trx, rejects);
        });
      },
      close: () => Promise.resolve(),
      abort: () => Promise.resolve(),
    });
  },

  async removeDuplicateKeys(knex, target) {
    const partition = target.key.map(() => '??').join(', ');
    const deleted = await knex.raw<Array<Record<string, WarehouseValue>>>(
      `WITH d AS (SELECT *, ROW_NUMBER() OVER (PARTITION BY ${partition} ORDER BY (SELECT NULL)) AS hub_rn FROM ??) ` +
        `DELETE FROM d OUTPUT deleted.* WHERE hub_rn > 1`,
      [...target.key, target.table],
    );
    return deleted.map((r) => target.columns.map((c) => r[c] ?? null));
  },

  // No keepLastVersions: a heap has no row order to tell a record's versions apart (%%physloc%%
  // follows free space), so incremental runs into an empty table apply batch by batch.

  personTables: 'table',
  async insertMissingPersons(trx, ids, seenAt) {
    for (let i = 0; i < ids.length; i += MSSQL_MAX_MISSING_PERSONS)
      await buildMssqlMissingPersonsInsert(trx, ids.slice(i, i + MSSQL_MAX_MISSING_PERSONS), seenAt);
  },
  analyzeTable: async (knex, table) => void (await knex.raw('UPDATE STATISTICS ??', [table])),

  lockUntilCommit: async (trx, resource) =>
    void (await trx.raw(
      "EXEC sp_getapplock @Resource = ?, @LockMode = 'Exclusive', @LockOwner = 'Transaction'",
      [resource],
    )),

  isUniqueViolation: (error) => [2601, 2627].includes((error as { number?: unknown }).number as number),

  buildUpsert(executor, target, rows) {
    if (rows.length > rowsPerStatement(mssqlDialect, target.columns.length)) {
      throw new Error('too many rows for one MERGE statement; the caller chunks by rowsPerStatement');
    }
    return buildMssqlMerge(executor, target, rows);
  },
};
