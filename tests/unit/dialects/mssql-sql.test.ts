import assert from 'node:assert/strict';
import knexFactory, { type Knex } from 'knex';
import type { WarehouseRow } from '../../../warehouse/core/warehouse-value.ts';
import { insertInChunks, rowsPerStatement, type BulkTarget } from '../../../warehouse/dialects/dialect.ts';
import {
  MSSQL_MAX_INSERT_ROWS,
  MSSQL_MAX_MISSING_PERSONS,
  buildMssqlMerge,
  buildMssqlMissingPersonsInsert,
  mssqlDialect,
} from '../../../warehouse/dialects/mssql.ts';
import * as access from '../../../warehouse/migrations/002-access.ts';
import { reshapeForWhoReadRuns } from '../../../warehouse/migrations/018-who-read-runs.ts';
import { insertMemberships } from '../../../warehouse/person-key.ts';
import { createRegistryTable, type RegistryTableSpec } from '../../../warehouse/registry-tables.ts';
import { compilingRawTransaction, SQL_SERVER_MAX_PARAMETERS } from '../../support/mssql-compiler.ts';

// SQL Server cannot run here: these tests compile the statements knex would send. Neither
// toSQL() nor toString() opens a connection.
const mssql = knexFactory({ client: 'mssql' });

const target: BulkTarget = {
  table: 'cspd_people',
  columns: ['national_id', 'full_name', 'gender'],
  key: ['national_id'],
};

function rowsOf(count: number, columns: number): WarehouseRow[] {
  return Array.from({ length: count }, (_, r) => Array.from({ length: columns }, (_, c) => `r${r}c${c}`));
}

/** c00, c01, ...: knex orders a multi-row insert's columns by name, so these keep their order. */
function columnNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => `c${String(i).padStart(2, '0')}`);
}

/**
 * An executor for insertInChunks that compiles each INSERT with the SQL Server client
 * instead of running it.
 */
function compilingExecutor(statements: Knex.Sql[]): Knex {
  const executor = (table: string) => ({
    insert(records: Array<Record<string, unknown>>) {
      statements.push(mssql(table).insert(records).toSQL());
      return Promise.resolve();
    },
  });
  return executor as unknown as Knex;
}

/**
 * An executor for schema changes that compiles each CREATE or ALTER TABLE and each INSERT (and
 * keeps each raw statement) with the SQL Server client instead of running it.
 */
function compilingSchemaExecutor(statements: Knex.Sql[]): Knex {
  const capture = (builder: Knex.SchemaBuilder) => {
    statements.push(...builder.toSQL());
    return Promise.resolve();
  };
  return Object.assign(compilingExecutor(statements), {
    client: mssql.client as unknown,
    schema: {
      createTable: (name: string, build: (t: Knex.CreateTableBuilder) => void) =>
        capture(mssql.schema.createTable(name, build)),
      alterTable: (name: string, build: (t: Knex.AlterTableBuilder) => void) =>
        capture(mssql.schema.alterTable(name, build)),
    },
    raw: (sql: string) => {
      statements.push({ sql, bindings: [] } as unknown as Knex.Sql);
      return Promise.resolve();
    },
  });
}

describe('SQL Server statements', () => {
  after(async () => {
    await mssql.destroy();
  });

  describe('buildMssqlMerge', () => {
    const rows: WarehouseRow[] = [
      ['1000000001', 'Ali', 'M'],
      ['1000000002', 'Mona', 'F'],
    ];

    it('is one MERGE WITH (HOLDLOCK) over a VALUES list', () => {
      const { sql } = buildMssqlMerge(mssql, target, rows).toSQL();
      assert.equal(
        sql,
        'MERGE INTO [cspd_people] WITH (HOLDLOCK) AS t USING (VALUES (?, ?, ?), (?, ?, ?)) AS s ([national_id], [full_name], [gender]) ' +
          'ON t.[national_id] = s.[national_id] ' +
          'WHEN MATCHED THEN UPDATE SET t.[full_name] = s.[full_name], t.[gender] = s.[gender] ' +
          'WHEN NOT MATCHED THEN INSERT ([national_id], [full_name], [gender]) VALUES (s.[national_id], s.[full_name], s.[gender]);',
      );
      assert.ok(sql.startsWith('MERGE INTO [cspd_people] WITH (HOLDLOCK)'));
    });

    it('binds exactly the values, row by row, and no identifiers', () => {
      const { bindings } = buildMssqlMerge(mssql, target, rows).toSQL();
      assert.deepEqual(bindings, ['1000000001', 'Ali', 'M', '1000000002', 'Mona', 'F']);
    });

    it('numbers the native parameters @p0.. in the same order', () => {
      const native = buildMssqlMerge(mssql, target, rows).toSQL().toNative();
      assert.match(native.sql, /USING \(VALUES \(@p0, @p1, @p2\), \(@p3, @p4, @p5\)\)/);
      assert.deepEqual(native.bindings, ['1000000001', 'Ali', 'M', '1000000002', 'Mona', 'F']);
    });

    it('joins every key column in ON and leaves key columns out of UPDATE SET', () => {
      const composite: BulkTarget = {
        table: 'ssc_contributions',
        columns: ['national_id', 'month', 'amount'],
        key: ['national_id', 'month'],
      };
      const { sql } = buildMssqlMerge(mssql, composite, [['1', '2024-01', 10]]).toSQL();
      assert.ok(sql.includes('ON t.[national_id] = s.[national_id] AND t.[month] = s.[month] WHEN MATCHED'));
      const set = /UPDATE SET (.*) WHEN NOT MATCHED/.exec(sql)?.[1];
      assert.equal(set, 't.[amount] = s.[amount]');
      assert.ok(
        sql.includes(
          'INSERT ([national_id], [month], [amount]) VALUES (s.[national_id], s.[month], s.[amount]);',
        ),
      );
    });

    it('has no WHEN MATCHED clause when every column is a key column', () => {
      const keysOnly: BulkTarget = { table: 't', columns: ['a', 'b'], key: ['a', 'b'] };
      const { sql, bindings } = buildMssqlMerge(mssql, keysOnly, [[1, 2]]).toSQL();
      assert.ok(!sql.includes('WHEN MATCHED'));
      assert.ok(!sql.includes('UPDATE'));
      assert.ok(
        sql.includes(
          'ON t.[a] = s.[a] AND t.[b] = s.[b] WHEN NOT MATCHED THEN INSERT ([a], [b]) VALUES (s.[a], s.[b]);',
        ),
      );
      assert.deepEqual(bindings, [1, 2]);
    });

    it('keeps an injection attempt a binding, out of the SQL text', () => {
      const attack = "x'; DROP TABLE t;--";
      const { sql, bindings } = buildMssqlMerge(mssql, target, [['1000000001', attack, null]]).toSQL();
      assert.deepEqual(bindings, ['1000000001', attack, null]);
      assert.ok(!sql.includes('DROP'));
      assert.ok(!sql.includes("'"));
      assert.ok(!sql.includes('--'));
      // Even knex's debugging text escapes the quote.
      assert.ok(
        buildMssqlMerge(mssql, target, [['1000000001', attack, null]])
          .toQuery()
          .includes("'x''; DROP TABLE t;--'"),
      );
    });

    it('binds Arabic text unchanged and NULLs as null', () => {
      const arabic = 'محمّد عبد\u200cالله';
      const { sql, bindings } = buildMssqlMerge(mssql, target, [
        ['1000000001', arabic, null],
        ['1000000002', null, 'أنثى'],
      ]).toSQL();
      assert.deepEqual(bindings, ['1000000001', arabic, null, '1000000002', null, 'أنثى']);
      assert.ok(!sql.includes('مح'));
      assert.ok(!sql.includes('NULL'));
      assert.equal((sql.match(/\?/g) ?? []).length, 6);
    });

    it('binds booleans as 1 and 0 and numbers as numbers', () => {
      const typed: BulkTarget = { table: 't', columns: ['id', 'active', 'income'], key: ['id'] };
      const { bindings } = buildMssqlMerge(mssql, typed, [
        [1, true, 12.5],
        [2, false, 0],
      ]).toSQL();
      assert.deepEqual(bindings, [1, 1, 12.5, 2, 0, 0]);
    });

    it('bracket-quotes identifiers, and knex drops brackets inside a name', () => {
      const odd: BulkTarget = { table: 'we]ird', columns: ['a]b', 'c[d'], key: ['a]b'] };
      const { sql } = buildMssqlMerge(mssql, odd, [[1, 2]]).toSQL();
      // knex's SQL Server client removes [ and ] from identifiers rather than doubling ]:
      // a name cannot close its quoting, though a]b and ab become the same column. The
      // definitions only allow [a-z0-9_] names, so this never reaches a real table.
      assert.equal(
        sql,
        'MERGE INTO [weird] WITH (HOLDLOCK) AS t USING (VALUES (?, ?)) AS s ([ab], [cd]) ON t.[ab] = s.[ab] ' +
          'WHEN MATCHED THEN UPDATE SET t.[cd] = s.[cd] WHEN NOT MATCHED THEN INSERT ([ab], [cd]) VALUES (s.[ab], s.[cd]);',
      );
      assert.equal(
        mssql('t').insert({ 'x]; DROP TABLE t;--': 1 }).toSQL().sql,
        'insert into [t] ([x; DROP TABLE t;--]) values (?)',
      );
    });

    it('stays under the parameter limit at the largest size buildUpsert allows', () => {
      for (const columns of [1, 3, 7, 40]) {
        const wide: BulkTarget = {
          table: 't',
          columns: columnNames(columns),
          key: ['c00'],
        };
        const max = rowsPerStatement(mssqlDialect, columns);
        const query = mssqlDialect.buildUpsert(mssql, wide, rowsOf(max, columns)).toSQL();
        assert.equal(query.bindings.length, max * columns);
        assert.ok(query.bindings.length <= mssqlDialect.maxBindings);
        assert.ok(!query.toNative().sql.includes(`@p${SQL_SERVER_MAX_PARAMETERS}`));
        assert.throws(
          () => mssqlDialect.buildUpsert(mssql, wide, rowsOf(max + 1, columns)),
          /too many rows for one MERGE/,
        );
      }
    });
  });

  describe('new persons of an incremental load', () => {
    const seenAt = '2026-03-01T00:00:00.000Z';

    it('probes hub_persons with UPDLOCK, HOLDLOCK, so a second load adding the same person waits and skips it', () => {
      const { sql, bindings } = buildMssqlMissingPersonsInsert(
        mssql,
        ['9872000001', '9872000002'],
        seenAt,
      ).toSQL();
      assert.equal(
        sql,
        'INSERT INTO [hub_persons] ([national_id], [first_seen_at]) SELECT v.[id], ? FROM (VALUES (?), (?)) AS v ([id]) ' +
          'WHERE NOT EXISTS (SELECT 1 FROM [hub_persons] AS p WITH (UPDLOCK, HOLDLOCK) WHERE p.[national_id] = v.[id])',
      );
      assert.deepEqual(bindings, [seenAt, '9872000001', '9872000002']);
    });

    it('keeps every statement within SQL Server’s parameter limit, and leaves out no ID', async () => {
      const statements: Knex.Sql[] = [];
      const executor = compilingRawTransaction(mssql, statements);
      const ids = Array.from({ length: 2 * MSSQL_MAX_MISSING_PERSONS + 5 }, (_, i) => String(9872000000 + i));
      await mssqlDialect.insertMissingPersons(executor, ids, seenAt);
      assert.equal(statements.length, 3);
      for (const { bindings } of statements) {
        assert.ok(bindings.length <= SQL_SERVER_MAX_PARAMETERS, `${bindings.length} parameters`);
        assert.equal(bindings[0], seenAt);
      }
      assert.deepEqual(
        statements.flatMap(({ bindings }) => bindings.slice(1)),
        ids,
      );
    });
  });

  describe('table memberships of a load (a table on SQL Server, which has no view for them)', () => {
    async function compileMemberships(nationalIdIsKey: boolean): Promise<string[]> {
      const statements: Knex.Sql[] = [];
      const executor = compilingRawTransaction(mssql, statements);
      await insertMemberships(executor, 'cspd_people', 'cspd_people_next', 'national_id', nationalIdIsKey);
      return statements.map((s) => s.toNative().sql);
    }

    it('lists each person once per table: by DISTINCT where the table may hold several rows per person', async () => {
      assert.deepEqual(await compileMemberships(false), [
        'INSERT INTO hub_person_tables (national_id, table_name) SELECT DISTINCT t.[national_id], @p0 FROM [cspd_people_next] t WHERE t.[national_id] IS NOT NULL',
      ]);
    });

    it('reads the IDs plainly where the national ID is the unique record key', async () => {
      assert.deepEqual(await compileMemberships(true), [
        'INSERT INTO hub_person_tables (national_id, table_name) SELECT t.[national_id], @p0 FROM [cspd_people_next] t WHERE t.[national_id] IS NOT NULL',
      ]);
    });
  });

  describe('rowsPerStatement', () => {
    it('keeps SQL Server statements under 2100 parameters and fills them', () => {
      assert.ok(mssqlDialect.maxBindings < SQL_SERVER_MAX_PARAMETERS);
      for (let columns = 1; columns <= 300; columns++) {
        const rows = rowsPerStatement(mssqlDialect, columns);
        assert.ok(rows >= 1);
        assert.ok(rows * columns <= mssqlDialect.maxBindings, `${columns} columns: ${rows} rows`);
        assert.ok(rows <= MSSQL_MAX_INSERT_ROWS);
        assert.ok(
          (rows + 1) * columns > mssqlDialect.maxBindings || rows === MSSQL_MAX_INSERT_ROWS,
          `${columns} columns: ${rows} rows is not the most`,
        );
      }
    });

    it('gives known sizes', () => {
      assert.equal(rowsPerStatement(mssqlDialect, 1), 1000);
      assert.equal(rowsPerStatement(mssqlDialect, 2), 1000);
      assert.equal(rowsPerStatement(mssqlDialect, 3), 666);
      assert.equal(rowsPerStatement(mssqlDialect, 7), 285);
      assert.equal(rowsPerStatement(mssqlDialect, 0), 1000);
      assert.equal(rowsPerStatement(mssqlDialect, 5000), 1);
    });

    it('sizes key lookups (whereIn) and upserts under the limit', () => {
      // Incremental loads look keys up in chunks of at most rowsPerStatement(dialect, key columns)
      // and upsert rowsPerStatement(dialect, 2 × columns) rows at a time.
      for (const keyColumns of [1, 2, 3]) {
        const chunk = rowsPerStatement(mssqlDialect, keyColumns);
        assert.ok(chunk * keyColumns <= 2000);
      }
      const lookup = mssql('cspd_people')
        .whereIn(
          'national_id',
          Array.from({ length: rowsPerStatement(mssqlDialect, 1) }, (_, i) => String(i)),
        )
        .count({ n: '*' })
        .toSQL();
      assert.equal(lookup.bindings.length, 1000);
      assert.ok(lookup.bindings.length <= SQL_SERVER_MAX_PARAMETERS);
      assert.ok(rowsPerStatement(mssqlDialect, 2 * 3) * 3 <= 1000);
    });
  });

  describe('insertInChunks', () => {
    it('keeps every INSERT under 2100 parameters and writes every row once, in order', async () => {
      for (const columns of [3, 7, 11]) {
        const wide: BulkTarget = {
          table: 'cspd_people',
          columns: columnNames(columns),
          key: ['c00'],
        };
        const rows = rowsOf(2500, columns);
        const statements: Knex.Sql[] = [];
        await insertInChunks(compilingExecutor(statements), mssqlDialect, wide, rows);
        const size = rowsPerStatement(mssqlDialect, columns);
        assert.equal(statements.length, Math.ceil(rows.length / size));
        for (const statement of statements) {
          assert.ok(
            statement.bindings.length <= SQL_SERVER_MAX_PARAMETERS,
            `${statement.bindings.length} parameters`,
          );
          assert.ok(statement.sql.startsWith(`insert into [cspd_people] ([c00], `));
        }
        assert.equal(statements[0]!.bindings.length, size * columns);
        assert.deepEqual(
          statements.flatMap((s) => s.bindings),
          rows.flat(),
        );
      }
    });

    it('binds injection attempts and Arabic text, never inlining them', async () => {
      const statements: Knex.Sql[] = [];
      const rows: WarehouseRow[] = [
        ['1000000001', "x'; DROP TABLE t;--", null],
        ['1000000002', 'فاطمة', 'F'],
      ];
      await insertInChunks(compilingExecutor(statements), mssqlDialect, target, rows);
      assert.equal(statements.length, 1);
      assert.equal(
        statements[0]!.sql,
        'insert into [cspd_people] ([full_name], [gender], [national_id]) values (?, ?, ?), (?, ?, ?)',
      );
      // knex orders a multi-row insert's columns by name; the bindings follow that order.
      assert.deepEqual(statements[0]!.bindings, [
        "x'; DROP TABLE t;--",
        null,
        '1000000001',
        'فاطمة',
        'F',
        '1000000002',
      ]);
    });
  });

  describe('the bulk writer', () => {
    async function writeThroughBulkWriter(columns: number, rowCount: number): Promise<Knex.Sql[]> {
      const statements: Knex.Sql[] = [];
      const executor = compilingExecutor(statements);
      const fakeKnex = {
        transaction: (work: (trx: Knex) => Promise<void>) => work(executor),
      } as unknown as Knex;
      const wide: BulkTarget = { table: 't', columns: columnNames(columns), key: ['c00'] };
      const writer = await mssqlDialect.openBulkWriter(fakeKnex, wide);
      await writer.write(rowsOf(rowCount, columns));
      await writer.close();
      return statements;
    }

    it('inserts at most 1000 rows per INSERT (SQL Server error 10738), even for one column', async () => {
      const statements = await writeThroughBulkWriter(1, 2500);
      assert.deepEqual(
        statements.map((s) => s.bindings.length),
        [1000, 1000, 500],
      );
      for (const s of statements) assert.ok((s.sql.match(/\(\?\)/g) ?? []).length <= MSSQL_MAX_INSERT_ROWS);
    });

    it('is bound by parameters, not rows, for wider tables', async () => {
      const statements = await writeThroughBulkWriter(5, 1000);
      assert.deepEqual(
        statements.map((s) => s.bindings.length),
        [2000, 2000, 1000],
      );
    });
  });

  describe('createRegistryTable (compiled, not run)', () => {
    it('creates bounded, non-null key columns and the indexes', async () => {
      const statements: Knex.Sql[] = [];
      const executor = compilingSchemaExecutor(statements);
      const spec: RegistryTableSpec = {
        table: 'cspd_people',
        nationalIdColumn: 'national_id',
        key: ['national_id', 'record_ref'],
        columns: [
          { name: 'national_id', type: 'string', length: 200 },
          { name: 'record_ref', type: 'text' },
          { name: 'notes', type: 'text' },
          { name: 'full_name', type: 'string', length: 80 },
          { name: 'region', type: 'string' },
          { name: 'household_size', type: 'integer' },
          { name: 'income', type: 'number' },
          { name: 'disabled', type: 'boolean' },
          { name: 'birth_date', type: 'date' },
          { name: 'updated_at', type: 'datetime' },
        ],
      };
      await createRegistryTable(executor, spec, 'cspd_people_next', { indexes: true, suffix: 'v7' });
      assert.deepEqual(
        statements.map((s) => s.sql),
        [
          'CREATE TABLE [cspd_people_next] ([national_id] nvarchar(32) not null, [record_ref] nvarchar(400) not null, ' +
            '[notes] nvarchar(max), [full_name] nvarchar(80), [region] nvarchar(255), [household_size] bigint, ' +
            '[income] float, [disabled] bit, [birth_date] date, [updated_at] nvarchar(19))',
          'CREATE UNIQUE INDEX [ux_cspd_people_key_v7] ON [cspd_people_next] ([national_id], [record_ref]) ' +
            'WHERE [national_id] IS NOT NULL AND [record_ref] IS NOT NULL',
          'CREATE INDEX [ix_cspd_people_nid_v7] ON [cspd_people_next] ([national_id])',
        ],
      );
      for (const s of statements) assert.deepEqual(s.bindings, []);
    });
  });
  describe('migration 018, who-read runs (compiled, not run)', () => {
    it("drops the subjects' key by the name migration 002 gave it, then keys them by event", async () => {
      const created: Knex.Sql[] = [];
      await access.up(compilingSchemaExecutor(created));
      const subjects = created.find((s) => s.sql.startsWith('CREATE TABLE [hub_audit_subjects]'));
      const key = /CONSTRAINT \[([^\]]+)\] PRIMARY KEY/.exec(subjects?.sql ?? '')?.[1];
      assert.equal(key, 'hub_audit_subjects_pkey');

      const reshaped: Knex.Sql[] = [];
      await reshapeForWhoReadRuns(compilingSchemaExecutor(reshaped));
      assert.deepEqual(
        reshaped.map((s) => s.sql),
        [
          `ALTER TABLE [hub_audit_subjects] DROP CONSTRAINT [${key}]`,
          'DROP INDEX [hub_audit_subjects_by_event] ON [hub_audit_subjects]',
          'ALTER TABLE [hub_audit_subjects] ADD CONSTRAINT [hub_audit_subjects_pkey] PRIMARY KEY ([audit_id], [national_id])',
          'CREATE TABLE [hub_audit_who_read] ([run] bigint not null, [national_id] nvarchar(32) not null, ' +
            '[audit_id] bigint not null, CONSTRAINT [hub_audit_who_read_pkey] PRIMARY KEY ([run], [national_id], [audit_id]))',
          'CREATE TABLE [hub_audit_who_read_runs] ([run] bigint not null, [level] int not null, ' +
            '[first_audit_id] bigint not null, [last_audit_id] bigint not null, [row_count] bigint not null, ' +
            '[state] nvarchar(16) not null, [touched_at] nvarchar(32) not null, ' +
            'CONSTRAINT [hub_audit_who_read_runs_pkey] PRIMARY KEY ([run]))',
        ],
      );
    });
  });
});
