import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Knex } from 'knex';
import { readConnectorFolder, type ConnectorDefinitionInput } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';

/** Each index of the table and its columns in order, read from the database's own catalog. */
async function fetchIndexColumns(knex: Knex, table: string): Promise<Map<string, string[]>> {
  const client = (knex.client as { config: { client: string } }).config.client;
  const definitions: Array<{ name: string; sql: string | null }> =
    client === 'pg'
      ? await knex('pg_indexes')
          .where({ tablename: table })
          .whereRaw('schemaname = current_schema()')
          .select({ name: 'indexname', sql: 'indexdef' })
      : await knex('sqlite_master').where({ type: 'index', tbl_name: table }).select('name', 'sql');
  return new Map(
    definitions.map((d) => [
      d.name,
      (/\(([^)]*)\)\s*$/.exec(d.sql ?? '')?.[1] ?? '').split(',').map((c) => c.trim().replace(/[`"]/g, '')),
    ]),
  );
}

const PEOPLE_CSV = (rows: Array<[number, string, string, string, number]>) =>
  ['NATNO,NAME,STATUS,DOB,UPDATED', ...rows.map(([n, ...rest]) => [validId(n), ...rest].join(','))].join(
    '\n',
  );

function peopleDefinition(indexes: unknown): ConnectorDefinitionInput & { indexes?: unknown } {
  return {
    name: 'idx-people',
    entity: 'IDX',
    source: { kind: 'csv', path: 'people.csv', cursor: 'UPDATED' },
    target: { table: 'idx_people' },
    mode: 'incremental',
    columns: {
      national_id: { from: 'NATNO', required: true },
      full_name: { from: 'NAME' },
      marital_status: { from: 'STATUS' },
      birth_date: { from: 'DOB', type: 'date' },
      updated: { from: 'UPDATED', type: 'integer' },
    },
    indexes,
  } as ConnectorDefinitionInput & { indexes?: unknown };
}

describeEachDatabase('declared indexes of a connector (indexes:)', (db) => {
  let dir: string;
  let ctx: AppContext;

  const load = async (full: boolean) => {
    const { definitions, invalid } = await readConnectorFolder(ctx.config.connectorsDir);
    assert.deepEqual(invalid, []);
    await prepareWarehouse(ctx);
    const summary = await runConnector(definitions[0]!, ctx, { full });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.equal(summary.error, null);
    return summary;
  };
  const declaredIndexes = async () =>
    new Map(
      [...(await fetchIndexColumns(ctx.knex, 'idx_people'))].filter(([name]) => name.startsWith('dx_')),
    );

  /** PostgreSQL plans joins from these: a table without them is taken for an empty one. */
  const assertPlannerStatistics = async () => {
    if (db.name !== 'postgres') return;
    const analyzed = await ctx
      .knex('pg_stats')
      .where({ tablename: 'idx_people' })
      .whereRaw('schemaname = current_schema()')
      .pluck<string[]>('attname');
    assert.deepEqual(analyzed.sort(), [
      'birth_date',
      'full_name',
      'marital_status',
      'national_id',
      'updated',
    ]);
  };

  /**
   * On PostgreSQL the swapped-in table has its declared indexes from its first query on: each
   * index took its final name in the transaction that swapped the table in and recorded its new
   * row count in the catalog.
   */
  const assertInPlaceAtSwap = async (
    names = ['dx_idx_people__birth_date', 'dx_idx_people__marital_status__national_id__birth_date'],
  ) => {
    if (db.name !== 'postgres') return;
    const swap = await ctx.knex.raw<{ rows: Array<{ xmin: string }> }>(
      "SELECT xmin::text AS xmin FROM hub_tables WHERE name = 'idx_people'",
    );
    const named = await ctx.knex.raw<{ rows: Array<{ name: string; xmin: string }> }>(
      'SELECT relname AS name, xmin::text AS xmin FROM pg_class WHERE relname = ANY(?) ORDER BY 1',
      [names],
    );
    assert.deepEqual(
      named.rows.map((r) => r.name),
      names,
    );
    for (const index of named.rows) assert.equal(index.xmin, swap.rows[0]!.xmin, index.name);
  };

  before(async () => {
    dir = await createTempDir('hub-indexes-');
    ctx = openTestContext(db.url(), dir);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('builds every declared index after a full load, named from its table and columns', async () => {
    await writeDefinition(
      ctx.config.connectorsDir,
      'idx-people',
      peopleDefinition([['marital_status', 'national_id', 'birth_date'], ['birth_date']]),
    );
    await writeFile(
      path.join(ctx.config.connectorsDir, 'people.csv'),
      PEOPLE_CSV([
        [1, 'أمل', 'W', '1950-01-01', 1],
        [2, 'هدى', 'M', '1960-01-01', 2],
      ]),
    );
    await load(true);
    await assertInPlaceAtSwap();
    assert.deepEqual(
      await declaredIndexes(),
      new Map([
        [
          'dx_idx_people__marital_status__national_id__birth_date',
          ['marital_status', 'national_id', 'birth_date'],
        ],
        ['dx_idx_people__birth_date', ['birth_date']],
      ]),
    );
    // The hub's own indexes are still there beside them.
    const all = await fetchIndexColumns(ctx.knex, 'idx_people');
    assert.ok([...all.values()].some((columns) => columns.join() === 'national_id'));
    await assertPlannerStatistics();
    // A second full load swaps in a new table and builds them again under the same names.
    await load(true);
    await assertInPlaceAtSwap();
    assert.equal((await declaredIndexes()).size, 2);
    await assertPlannerStatistics();
  });

  it('creates a missing index after an incremental run, and drops one no longer declared', async () => {
    await ctx.knex.schema.alterTable('idx_people', (t) => t.dropIndex([], 'dx_idx_people__birth_date'));
    await writeFile(
      path.join(ctx.config.connectorsDir, 'people.csv'),
      PEOPLE_CSV([
        [1, 'أمل', 'W', '1950-01-01', 1],
        [2, 'هدى', 'M', '1960-01-01', 2],
        [3, 'رنا', 'W', '1970-01-01', 3],
      ]),
    );
    const summary = await load(false);
    assert.equal(summary.mode, 'incremental');
    assert.equal(summary.inserted, 1);
    assert.deepEqual([...(await declaredIndexes()).keys()].sort(), [
      'dx_idx_people__birth_date',
      'dx_idx_people__marital_status__national_id__birth_date',
    ]);
    await writeDefinition(
      ctx.config.connectorsDir,
      'idx-people',
      peopleDefinition([['full_name', 'birth_date']]),
    );
    await load(false);
    assert.deepEqual(
      await declaredIndexes(),
      new Map([['dx_idx_people__full_name__birth_date', ['full_name', 'birth_date']]]),
    );
    assert.equal(Number((await ctx.knex('idx_people').count({ n: '*' }))[0]?.n), 3, 'no row lost');
    await assertPlannerStatistics();
  });

  if (db.name === 'postgres')
    it('an index the database cannot build leaves the load succeeded, its rows swapped in, and the error on the run', async () => {
      // A value past the B-tree's row size limit (about 2.7 KB): random, so compression cannot shrink it.
      const long = randomBytes(8000).toString('base64');
      await writeDefinition(ctx.config.connectorsDir, 'idx-people', {
        ...peopleDefinition([['birth_date'], ['note']]),
        columns: { ...peopleDefinition([]).columns, note: { from: 'NOTE', type: 'text' } },
      });
      await writeFile(
        path.join(ctx.config.connectorsDir, 'people.csv'),
        [
          'NATNO,NAME,STATUS,DOB,UPDATED,NOTE',
          `${validId(1)},أمل,W,1950-01-01,1,${long}`,
          `${validId(2)},هدى,M,1960-01-01,2,قصير`,
        ].join('\n'),
      );
      const { definitions } = await readConnectorFolder(ctx.config.connectorsDir);
      await prepareWarehouse(ctx);
      const summary = await runConnector(definitions[0]!, ctx, { full: true });
      assert.equal(summary.status, 'succeeded');
      assert.match(summary.error ?? '', /^loaded, but the declared indexes were not all built: .*index row/);
      assert.deepEqual(await ctx.knex('idx_people').orderBy('national_id').pluck('national_id'), [
        validId(1),
        validId(2),
      ]);
      // The index that could be built is there under its own name, in place at the swap; nothing
      // built on the next table is left.
      assert.deepEqual([...(await declaredIndexes()).keys()], ['dx_idx_people__birth_date']);
      await assertInPlaceAtSwap(['dx_idx_people__birth_date']);
      const leftovers = await ctx.knex('pg_class').whereRaw("relname LIKE '%next%'").pluck('relname');
      assert.deepEqual(leftovers, []);
    });

  it('a bad indexes entry is refused when the connector is read, naming the field', async () => {
    const cases: Array<[unknown, RegExp]> = [
      [[['national_id', 'no_such_column']], /indexes\[0\]: no_such_column is not a mapped column/],
      [[['birth_date'], ['NATNO']], /indexes\[1\]/],
      [[['birth_date', 'birth_date']], /indexes\[0\]: a column is listed twice/],
      [[['birth_date'], ['birth_date']], /indexes\[1\]: the same index is declared twice/],
      [[[]], /indexes\[0\]/],
      ['birth_date', /indexes/],
    ];
    const before = await declaredIndexes();
    for (const [indexes, message] of cases) {
      await writeDefinition(ctx.config.connectorsDir, 'idx-people', peopleDefinition(indexes));
      const { definitions, invalid } = await readConnectorFolder(ctx.config.connectorsDir);
      assert.deepEqual(definitions, [], JSON.stringify(indexes));
      assert.equal(invalid.length, 1);
      assert.match(invalid[0]!.message, message);
      assert.match(invalid[0]!.message, /idx-people/);
    }
    // Nothing was built or dropped for a definition the hub refused.
    assert.deepEqual(await declaredIndexes(), before);
  });
});
