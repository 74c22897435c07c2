import assert from 'node:assert/strict';
import fc from 'fast-check';
import { deleteQuery, saveQuery } from '../../server/services/query-service.ts';
import {
  assertApiError,
  describePersonColumns,
  PERSON,
  REGISTRY_TABLE_NAMES,
  REGISTRY_TABLES,
  startApiHub,
  superAdmin,
  type ApiHub,
  type RegistryTableName,
} from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';

/** What one table's grant to the consumer ends up as, and the way it gets there. */
type TableGrant =
  | { kind: 'none' }
  | { kind: 'whole' }
  /** viaRevoke: a whole-table grant narrowed by revoking the other columns; otherwise a column grant. */
  | { kind: 'columns'; columns: string[]; viaRevoke: boolean };

interface QuerySpec {
  tables: RegistryTableName[];
  join: 'inner' | 'left';
  columns: string[];
  condition: { column: string; op: 'is_null' | 'is_not_null' } | undefined;
  orderBy: string | undefined;
}

interface Scenario {
  consumer: 'NAF' | 'VEH';
  grants: Record<RegistryTableName, TableGrant>;
  lookups: string[];
  queries: QuerySpec[];
}

interface PersonBody {
  tables: Record<string, Array<Record<string, unknown>>>;
}

interface OpenApiBody {
  paths: Record<string, unknown>;
}

const CONSUMERS = ['NAF', 'VEH'] as const;
const NUM_RUNS = 100;
const columnsOf = (table: RegistryTableName): string[] => [...REGISTRY_TABLES[table].columns];
const qualify = (table: string, columns: string[]) => columns.map((c) => `${table}.${c}`);

const tableGrant = (table: RegistryTableName): fc.Arbitrary<TableGrant> =>
  fc.oneof(
    fc.constant<TableGrant>({ kind: 'none' }),
    fc.constant<TableGrant>({ kind: 'whole' }),
    fc.record({
      kind: fc.constant('columns' as const),
      columns: fc.subarray(columnsOf(table), { minLength: 1 }),
      viaRevoke: fc.boolean(),
    }),
  );

const querySpec: fc.Arbitrary<QuerySpec> = fc
  .shuffledSubarray(REGISTRY_TABLE_NAMES, { minLength: 1, maxLength: 3 })
  .chain((tables) => {
    const columns = tables.flatMap((t) => qualify(t, columnsOf(t)));
    return fc.record({
      tables: fc.constant(tables),
      join: fc.constantFrom('inner' as const, 'left' as const),
      columns: fc.subarray(columns, { minLength: 1, maxLength: Math.min(6, columns.length) }),
      condition: fc.option(
        fc.record({
          column: fc.constantFrom(...columns),
          op: fc.constantFrom('is_null' as const, 'is_not_null' as const),
        }),
        { nil: undefined },
      ),
      orderBy: fc.option(fc.constantFrom(...columns), { nil: undefined }),
    });
  });

const scenario: fc.Arbitrary<Scenario> = fc.record({
  consumer: fc.constantFrom(...CONSUMERS),
  grants: fc.record(
    Object.fromEntries(REGISTRY_TABLE_NAMES.map((t) => [t, tableGrant(t)])) as Record<
      RegistryTableName,
      fc.Arbitrary<TableGrant>
    >,
  ),
  lookups: fc.array(fc.constantFrom(...Object.values(PERSON)), { minLength: 1, maxLength: 3 }),
  queries: fc.array(querySpec, { minLength: 1, maxLength: 3 }),
});

/** The columns the consumer may read, per table, worked out from the scenario alone. */
function buildExpectedAccess(s: Scenario): Map<RegistryTableName, string[]> {
  const access = new Map<RegistryTableName, string[]>();
  for (const table of REGISTRY_TABLE_NAMES) {
    const grant = s.grants[table];
    if (REGISTRY_TABLES[table].entity === s.consumer || grant.kind === 'whole')
      access.set(table, columnsOf(table));
    else if (grant.kind === 'columns')
      access.set(
        table,
        columnsOf(table).filter((c) => grant.columns.includes(c)),
      );
  }
  return access;
}

const readColumns = (q: QuerySpec) => [
  ...new Set([...q.columns, ...(q.condition ? [q.condition.column] : []), ...(q.orderBy ? [q.orderBy] : [])]),
];

function isAllowed(access: Map<RegistryTableName, string[]>, ref: string): boolean {
  const [table, column] = ref.split('.') as [RegistryTableName, string];
  return access.get(table)?.includes(column) ?? false;
}

describeEachDatabase('Consumer API: no column leaks under random grants (property)', (db) => {
  let hub: ApiHub;
  const tokens = new Map<string, string>();
  let saved = 0;

  before(async () => {
    hub = await startApiHub(db.url());
    // A first grant registers NAF as an entity; every run sets its own grants anyway.
    await hub.grant('NAF', 'reg_people');
    for (const consumer of CONSUMERS) {
      const { token } = await hub.createCaller(consumer, {
        ratePerMinute: 1_000_000,
        ratePerDay: 1_000_000_000,
      });
      tokens.set(consumer, token);
    }
  });

  after(async () => {
    await hub?.close();
  });

  /** Saves the queries while everything is granted, then narrows the grants through grantAccess/revokeAccess. */
  async function applyScenario(s: Scenario): Promise<string[]> {
    const foreign = REGISTRY_TABLE_NAMES.filter((t) => REGISTRY_TABLES[t].entity !== s.consumer);
    for (const table of foreign) await hub.grant(s.consumer, table);
    const names: string[] = [];
    for (const q of s.queries) {
      const name = `no-leak-${++saved}`;
      await saveQuery(
        hub.ctx,
        {
          name,
          entity: s.consumer,
          tables: q.tables,
          join: q.join,
          columns: q.columns,
          conditions: q.condition ? [q.condition] : [],
          ...(q.orderBy ? { order_by: [{ column: q.orderBy, direction: 'desc' }] } : {}),
        },
        superAdmin.name,
      );
      names.push(name);
    }
    for (const table of foreign) {
      const grant = s.grants[table];
      if (grant.kind === 'none') await hub.revoke(s.consumer, table);
      if (grant.kind !== 'columns') continue;
      const others = columnsOf(table).filter((c) => !grant.columns.includes(c));
      if (grant.viaRevoke) {
        if (others.length > 0) await hub.revoke(s.consumer, table, others);
      } else {
        await hub.revoke(s.consumer, table);
        await hub.grant(s.consumer, table, grant.columns);
      }
    }
    return names;
  }

  async function checkPerson(
    token: string,
    nationalId: string,
    access: Map<RegistryTableName, string[]>,
  ): Promise<void> {
    const res = await hub.call('GET', `/api/v1/persons/${nationalId}`, { token });
    assert.equal(res.status, 200, res.text);
    const { tables } = res.body as PersonBody;
    const expectedTables = [...access].filter(([, columns]) => columns.length > 0).map(([t]) => t);
    assert.deepEqual(
      Object.keys(tables).sort(),
      [...expectedTables].sort(),
      `tables of ${nationalId}: ${res.text}`,
    );
    for (const table of expectedTables) {
      const rows = tables[table] ?? [];
      const held = await hub.ctx
        .knex(table)
        .where({ national_id: nationalId })
        .count({ n: '*' })
        .first<{ n: number | string }>();
      assert.equal(rows.length, Number(held?.n), `rows of ${table} for ${nationalId}`);
      for (const row of rows)
        assert.deepEqual(Object.keys(row), access.get(table), `columns of ${table}: ${res.text}`);
    }
  }

  async function checkQuery(
    token: string,
    name: string,
    q: QuerySpec,
    access: Map<RegistryTableName, string[]>,
  ): Promise<void> {
    const res = await hub.call('POST', `/api/v1/queries/${name}`, { token, json: { page_size: 1000 } });
    const denied = readColumns(q)
      .filter((ref) => !isAllowed(access, ref))
      .sort();
    if (denied.length > 0) {
      assertApiError(
        res,
        403,
        'column_not_granted',
        new RegExp(`^not granted: ${denied.join(', ').replace(/\./g, '\\.')}$`),
      );
      return;
    }
    assert.equal(res.status, 200, res.text);
    const body = res.body as { columns: string[]; rows: Array<Record<string, unknown>> };
    assert.deepEqual(body.columns, q.columns);
    for (const column of body.columns)
      assert.ok(isAllowed(access, column), `${column} returned but not granted`);
    for (const row of body.rows) assert.deepEqual(Object.keys(row), q.columns, `row keys: ${res.text}`);
  }

  async function checkOpenApi(
    token: string,
    names: string[],
    s: Scenario,
    access: Map<RegistryTableName, string[]>,
  ): Promise<void> {
    const res = await hub.call('GET', '/api/v1/openapi.json', { token });
    assert.equal(res.status, 200, res.text);
    const { paths } = res.body as OpenApiBody;
    const runnable = names.filter((_, i) => s.queries[i]!.columns.every((c) => isAllowed(access, c)));
    assert.deepEqual(
      Object.keys(paths).filter((p) => p.startsWith('/api/v1/queries/')),
      runnable.map((n) => `/api/v1/queries/${n}`).sort(),
    );
    const expected = Object.fromEntries([...access].filter(([, columns]) => columns.length > 0));
    assert.deepEqual(describePersonColumns({ paths }), expected, 'person schema in OpenAPI');
  }

  it('person lookups, saved queries and OpenAPI show only granted columns of granted or own tables', async function () {
    this.timeout(10 * 60_000);
    const seed =
      process.env.FC_SEED === undefined ? Math.floor(Math.random() * 2 ** 31) : Number(process.env.FC_SEED);
    const property = fc.asyncProperty(scenario, async (s) => {
      const names = await applyScenario(s);
      try {
        const access = buildExpectedAccess(s);
        const token = tokens.get(s.consumer)!;
        for (const nationalId of s.lookups) await checkPerson(token, nationalId, access);
        for (const [i, q] of s.queries.entries()) await checkQuery(token, names[i]!, q, access);
        await checkOpenApi(token, names, s, access);
      } finally {
        for (const name of names) await deleteQuery(hub.ctx, name, superAdmin.name);
      }
    });
    try {
      // Each run costs database round trips, so a failure stops at once instead of shrinking; the seed replays it.
      await fc.assert(property, { numRuns: NUM_RUNS, seed, endOnFailure: true });
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new Error(
        `no-leak property failed on ${db.name} with fast-check seed ${seed} (replay: FC_SEED=${seed})\n${message}`,
        {
          cause: err,
        },
      );
    }
  });
});
