import assert from 'node:assert/strict';
import knexFactory, { type Knex } from 'knex';
import { DEFAULT_FAN_IN } from '../../../warehouse/audit/who-read-index.ts';
import {
  copySortedRows,
  countRowsMissingFromRun,
  countRunRows,
  deleteRunRows,
  eventsBetween,
  listRun,
  makeRunLive,
  runsBetween,
  selectAbandonedMerge,
  selectBoundary,
  selectBuilding,
  selectHighestListedRun,
  selectHighestStoredRun,
  selectIndexedUpTo,
  selectListedRuns,
  selectListing,
  selectLiveRuns,
  selectNextStoredRun,
  selectStillLive,
  selectTailEdge,
  selectTailEnd,
  unlistAbandonedMerges,
  unlistRuns,
  WHO_READ_RUNS,
  WHO_READ_TABLE,
} from '../../../warehouse/audit/who-read-statements.ts';
import { selectWhoRead } from '../../../warehouse/audit/who-read.ts';
import { mssqlDialect } from '../../../warehouse/dialects/mssql.ts';
import { compilingRawTransaction, SQL_SERVER_MAX_PARAMETERS } from '../../support/mssql-compiler.ts';

// SQL Server cannot run here: the who-read index's statements and the who-read lookup are
// compiled with knex's SQL Server client (no connection is opened) and checked as it would send them.
const mssql = knexFactory({ client: 'mssql' });

/** A national ID that would break out of a string literal if it were ever put into the SQL text. */
const HOSTILE_ID = "J'; DROP TABLE hub_audit; --";

const compile = (statement: Knex.QueryBuilder | Knex.Raw) => statement.toSQL().toNative();

/** The statement names no table but by bracket-quoted name, and every value is a parameter. */
function assertBound(sql: { sql: string; bindings: readonly unknown[] }, values: readonly unknown[]): void {
  for (const value of values) {
    assert.ok(sql.bindings.includes(value), `${String(value)} is bound`);
    if (typeof value === 'string') assert.ok(!sql.sql.includes(value), `${value} is not in the SQL text`);
  }
  const placeholders = sql.sql.match(/@p\d+/g) ?? [];
  assert.equal(placeholders.length, sql.bindings.length, 'one @p placeholder per binding');
  assert.ok(!sql.sql.includes('?'), 'no unreplaced ? placeholder');
  assert.doesNotMatch(sql.sql, /"(hub_audit\w*)"/, 'no double-quoted identifier');
}

describe('the who-read index and lookup on SQL Server (compiled, not run)', () => {
  after(async () => {
    await mssql.destroy();
  });

  it('finds the edge of a new run and a merge range by a keyset seek: ORDER BY, then OFFSET … FETCH NEXT 1', () => {
    // SQL Server refuses OFFSET without ORDER BY, and TOP cannot skip rows.
    const edge = compile(selectTailEdge(mssql, 41, 20_000));
    assert.equal(
      edge.sql,
      'select [audit_id] from [hub_audit_subjects] where [audit_id] > @p0 order by [audit_id] asc offset @p1 rows fetch next @p2 rows only',
    );
    assert.deepEqual(edge.bindings, [41, 19_999, 1]);

    const boundary = compile(selectBoundary(mssql, 7, HOSTILE_ID, 625));
    assert.equal(
      boundary.sql,
      `select [national_id] from [${WHO_READ_TABLE}] where [run] = @p0 and [national_id] > @p1 order by [national_id] asc offset @p2 rows fetch next @p3 rows only`,
    );
    assert.deepEqual(boundary.bindings, [7, HOSTILE_ID, 624, 1]);
    const first = compile(selectBoundary(mssql, 7, null, 625));
    assert.match(first.sql, /where \[run\] = @p0 order by \[national_id\] asc offset @p1 rows/);
    assert.deepEqual(first.bindings, [7, 624, 1]);
  });

  it('copies a run as one INSERT … SELECT in national-ID order, the run bound and cast to bigint', () => {
    const run = compile(copySortedRows(mssql, 12, 'hub_audit_subjects', eventsBetween(400, 20_399)));
    assert.equal(
      run.sql,
      `INSERT INTO [${WHO_READ_TABLE}] (run, national_id, audit_id) SELECT CAST(@p0 AS bigint), national_id, audit_id ` +
        'FROM [hub_audit_subjects] WHERE audit_id > @p1 AND audit_id <= @p2 ORDER BY national_id, audit_id',
    );
    assert.deepEqual(run.bindings, [12, 400, 20_399]);

    const merge = compile(copySortedRows(mssql, 13, WHO_READ_TABLE, runsBetween([3, 4], HOSTILE_ID, 'J9')));
    assert.equal(
      merge.sql,
      `INSERT INTO [${WHO_READ_TABLE}] (run, national_id, audit_id) SELECT CAST(@p0 AS bigint), national_id, audit_id ` +
        `FROM [${WHO_READ_TABLE}] WHERE run IN (@p1, @p2) AND national_id > @p3 AND national_id <= @p4 ORDER BY national_id, audit_id`,
    );
    assertBound(merge, [13, 3, 4, HOSTILE_ID, 'J9']);
  });

  it('keeps the largest merge step and the switch of its runs under the parameter limit', () => {
    const sources = Array.from({ length: DEFAULT_FAN_IN }, (_, i) => 1000 + i);
    const copy = compile(copySortedRows(mssql, 2000, WHO_READ_TABLE, runsBetween(sources, 'J1', 'J2')));
    assert.equal(copy.bindings.length, DEFAULT_FAN_IN + 3);
    for (const statement of [selectStillLive(mssql, sources), unlistRuns(mssql, sources)]) {
      const sql = compile(statement);
      assert.ok(sql.bindings.length <= SQL_SERVER_MAX_PARAMETERS);
      assertBound(sql, sources);
    }
    assert.ok(copy.bindings.length <= SQL_SERVER_MAX_PARAMETERS);
  });

  it('binds every value of the bookkeeping statements and quotes every table with brackets', () => {
    const listing = {
      run: 5,
      level: 1,
      first_audit_id: 1,
      last_audit_id: 640_000,
      row_count: 640_000,
      state: 'building' as const,
      touched_at: '2026-12-06T00:00:00.000Z',
    };
    const cases: Array<[Knex.QueryBuilder | Knex.Raw, unknown[]]> = [
      [selectIndexedUpTo(mssql), []],
      [selectTailEnd(mssql, 41), [41]],
      [selectHighestListedRun(mssql), []],
      [selectHighestStoredRun(mssql), []],
      [countRunRows(mssql, 5), [5]],
      [listRun(mssql, listing), Object.values(listing)],
      [selectLiveRuns(mssql), ['live']],
      [selectBuilding(mssql, 5), [5, 'building']],
      [makeRunLive(mssql, 5, listing.touched_at), [5, 'live', listing.touched_at]],
      [unlistAbandonedMerges(mssql, listing.touched_at), ['building', listing.touched_at]],
      [selectAbandonedMerge(mssql, listing.touched_at), ['building', listing.touched_at]],
      [selectListedRuns(mssql), []],
      [selectListing(mssql, 5), [5]],
      [deleteRunRows(mssql, 5, HOSTILE_ID), [5, HOSTILE_ID]],
      [deleteRunRows(mssql, 5, null), [5]],
      [selectNextStoredRun(mssql, 5), [5]],
      [countRowsMissingFromRun(mssql, 5, 1, 640_000), [5, 1, 640_000]],
    ];
    for (const [statement, values] of cases) {
      const sql = compile(statement);
      assertBound(sql, values);
      assert.match(sql.sql, new RegExp(`\\[(${WHO_READ_TABLE}|${WHO_READ_RUNS}|hub_audit_subjects)\\]`));
    }
    // A dead run is deleted a range at a time, never past its upper bound.
    assert.equal(
      compile(deleteRunRows(mssql, 5, 'J9')).sql,
      `delete from [${WHO_READ_TABLE}] where [run] = @p0 and [national_id] <= @p1;select @@rowcount`,
    );
  });

  it('reads the last indexed event and the next stored run as one aggregate column each', () => {
    assert.equal(
      compile(selectIndexedUpTo(mssql)).sql,
      `select max([last_audit_id]) as [result] from [${WHO_READ_RUNS}]`,
    );
    assert.equal(
      compile(selectNextStoredRun(mssql, 5)).sql,
      `select min([run]) as [result] from [${WHO_READ_TABLE}] where [run] > @p0`,
    );
  });

  it('takes the runs lock as a transaction-owned application lock', async () => {
    const sent: Knex.Sql[] = [];
    await mssqlDialect.lockUntilCommit(compilingRawTransaction(mssql, sent), WHO_READ_RUNS);
    assert.deepEqual(
      sent.map((s) => s.toNative()),
      [
        {
          sql: "EXEC sp_getapplock @Resource = @p0, @LockMode = 'Exclusive', @LockOwner = 'Transaction'",
          bindings: [WHO_READ_RUNS],
        },
      ],
    );
  });

  it('looks up who read a person in one statement: each live run sought, the tail scanned, newest first', () => {
    const lookup = compile(selectWhoRead(mssql, HOSTILE_ID, { limit: 50 }));
    assert.equal(
      lookup.sql,
      'select top (@p0) [a].[at], [a].[entity], [a].[actor], [a].[action], [a].[target], [a].[details] ' +
        'from [hub_audit] as [a] where [a].[id] in (' +
        `select [audit_id] from [${WHO_READ_TABLE}] where [run] in (select [run] from [${WHO_READ_RUNS}] where [state] = @p1) and [national_id] = @p2 ` +
        'union all ' +
        `select [audit_id] from [hub_audit_subjects] where [audit_id] > ((select COALESCE(MAX(last_audit_id), 0) from [${WHO_READ_RUNS}] where [state] = @p3)) and [national_id] = @p4` +
        ') order by [a].[id] desc',
    );
    assert.deepEqual(lookup.bindings, [50, 'live', HOSTILE_ID, 'live', HOSTILE_ID]);
  });

  it("scopes the lookup to an entity's events with bound LIKE patterns and an explicit escape", () => {
    const lookup = compile(
      selectWhoRead(mssql, 'J1', { scope: { entity: 'cspd', tables: ['cspd_personal_info'] } }),
    );
    assert.match(
      lookup.sql,
      /and \(\[a\]\.\[entity\] = @p5 or \(\[a\]\.\[action\] in \(@p6, @p7\) and \[a\]\.\[target\] in \(@p8\)\) or \[a\]\.\[details\] like @p9 escape '\\'\)/,
    );
    assert.deepEqual(lookup.bindings.slice(5), [
      'cspd',
      'grant',
      'revoke',
      'cspd_personal_info',
      '%"cspd\\_personal\\_info.%',
    ]);
  });
});
