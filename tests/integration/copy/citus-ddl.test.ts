import assert from 'node:assert/strict';
import pg from 'pg';
import { buildCitusDdl } from '../../../warehouse/copy/build-citus-ddl.ts';
import { startApiHub, type ApiHub, REGISTRY_TABLES } from '../../support/api-hub.ts';
import { testDatabases } from '../../support/databases.ts';
import { runHubCli } from '../../support/run-hub-cli.ts';

const statements = (ddl: string) => ddl.split('\n').filter((line) => line.startsWith('SELECT '));

describe('hub citus-ddl: the statements that distribute a warehouse on Citus', () => {
  describe('the generated text', () => {
    const ddl = buildCitusDdl({
      source: 'postgres://hub@db/hub',
      registryTables: [
        { name: 'veh_vehicles', nationalIdColumn: 'owner_id', key: ['plate', 'region'] },
        { name: 'reg_people', nationalIdColumn: 'national_id', key: ['national_id'] },
        { name: 'ssc_jobs', nationalIdColumn: 'national_id', key: ['national_id', 'employer'] },
      ],
      hubTables: [
        'hub_audit',
        'hub_columns',
        'hub_entities',
        'hub_grants',
        'hub_person_tables',
        'hub_persons',
        'hub_tables',
        'hub_sessions',
      ],
      references: [
        { table: 'hub_columns', references: 'hub_tables' },
        { table: 'hub_tables', references: 'hub_entities' },
      ],
    });

    it('distributes the person key and every registry table by its national ID column, in one co-location group', () => {
      // hub_person_tables is a view over the registry tables on PostgreSQL: nothing to distribute.
      assert.deepEqual(statements(ddl).slice(0, 4), [
        "SELECT create_distributed_table('hub_persons', 'national_id');",
        "SELECT create_distributed_table('reg_people', 'national_id', colocate_with => 'hub_persons');",
        "SELECT create_distributed_table('ssc_jobs', 'national_id', colocate_with => 'hub_persons');",
        "SELECT create_distributed_table('veh_vehicles', 'owner_id', colocate_with => 'hub_persons');",
      ]);
    });

    it('widens a record key without the national ID, and only that one', () => {
      assert.match(
        ddl,
        /ALTER TABLE "veh_vehicles" ADD CONSTRAINT "ux_veh_vehicles_key_citus" UNIQUE \("owner_id", "plate", "region"\);\nSELECT create_distributed_table\('veh_vehicles'/,
      );
      assert.equal(ddl.match(/ADD CONSTRAINT/g)?.length, 1);
      assert.equal(ddl.match(/^DO \$\$$/gm)?.length, 1);
    });

    it('makes configuration reference tables, referenced tables first, and leaves the rest on the coordinator', () => {
      assert.deepEqual(statements(ddl).slice(4), [
        "SELECT create_reference_table('hub_entities');",
        "SELECT create_reference_table('hub_grants');",
        "SELECT create_reference_table('hub_tables');",
        "SELECT create_reference_table('hub_columns');",
      ]);
      // A hub table the generator does not know (a newer migration's) stays a plain table.
      assert.match(ddl, /^-- hub_audit, hub_sessions$/m);
    });
  });

  describe('run against a migrated and loaded PostgreSQL warehouse', function () {
    this.timeout(120_000);
    const postgres = testDatabases.find((d) => d.name === 'postgres')!;
    let url: string;
    let hub: ApiHub;
    let client: pg.Client;

    before(async () => {
      url = await postgres.createUrl();
      hub = await startApiHub(url);
      client = new pg.Client({ connectionString: url });
      await client.connect();
      // Citus is not installed here: these functions stand in for it and refuse what Citus
      // documents it refuses, so the generated statements are run for real against its rules.
      await client.query(CITUS_STAND_IN);
    });

    after(async () => {
      await client.end();
      await hub.close();
      await postgres.dropUrl(url);
    });

    it('runs without error, co-locates every table the query engine joins, and keeps every row', async () => {
      const countRows = async () => {
        const counts: Record<string, number> = {};
        for (const table of Object.keys(REGISTRY_TABLES)) {
          counts[table] = Number(
            (await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n,
          );
        }
        return counts;
      };
      const rowsBefore = await countRows();
      // The stand-in refuses what Citus refuses: the vehicles' key as loaded has no national ID.
      await client.query('BEGIN');
      await assert.rejects(
        client.query("SELECT create_distributed_table('veh_vehicles', 'national_id')"),
        /do not include the partition column/,
      );
      await client.query('ROLLBACK');
      const result = await runHubCli(['citus-ddl', '--db', url], { HUB_DATA_DIR: hub.dir });
      assert.equal(result.code, 0, result.stderr);
      await client.query(result.stdout);

      const placed = (
        await client.query<{
          placed_table: string;
          kind: string;
          dist_column: string | null;
          colocation: string | null;
        }>(
          'SELECT placed_table, kind, dist_column, colocation FROM citus_stand_in_placement ORDER BY placed_table',
        )
      ).rows;
      const distributed = placed
        .filter((p) => p.kind === 'distributed')
        .map((p) => [p.placed_table, p.dist_column, p.colocation]);
      assert.deepEqual(distributed, [
        ['hub_persons', 'national_id', 'default'],
        ['reg_households', 'national_id', 'hub_persons'],
        ['reg_people', 'national_id', 'hub_persons'],
        ['veh_vehicles', 'national_id', 'hub_persons'],
      ]);
      const reference = placed.filter((p) => p.kind === 'reference').map((p) => p.placed_table);
      assert.ok(reference.includes('hub_grants') && reference.includes('hub_tables'));
      assert.ok(!reference.includes('hub_audit'));
      assert.deepEqual(await countRows(), rowsBefore);
      const keys = await client.query<{ def: string }>(
        "SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint WHERE conrelid = 'veh_vehicles'::regclass AND contype = 'u'",
      );
      assert.deepEqual(
        keys.rows.map((r) => r.def),
        ['UNIQUE (national_id, registration_number)'],
      );
    });

    it('exits 1 with a hub: message for a warehouse it cannot read', async () => {
      const result = await runHubCli(['citus-ddl', '--db', 'postgres://hub:s3cret@127.0.0.1:1/none'], {
        HUB_DATA_DIR: hub.dir,
      });
      assert.equal(result.code, 1);
      assert.match(result.stderr, /^hub: .*ECONNREFUSED/);
      assert.doesNotMatch(result.stderr, /s3cret/);
      assert.equal(result.stdout, '');
    });
  });
});

/** Citus's documented refusals: unique keys without the distribution column, co-location across types, reference tables pointing at others. */
const CITUS_STAND_IN = `
CREATE TABLE citus_stand_in_placement (placed_table text PRIMARY KEY, kind text NOT NULL, dist_column text, colocation text);

CREATE FUNCTION create_distributed_table(table_name regclass, distribution_column text, colocate_with text DEFAULT 'default')
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  column_number int2;
  column_type text;
  anchor_type text;
BEGIN
  SELECT attnum, format_type(atttypid, NULL) INTO column_number, column_type
    FROM pg_attribute WHERE attrelid = table_name AND attname = distribution_column AND NOT attisdropped;
  IF column_number IS NULL THEN
    RAISE EXCEPTION 'column "%" of relation "%" does not exist', distribution_column, table_name;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_index WHERE indrelid = table_name AND indisunique AND NOT column_number = ANY (indkey::int2[])) THEN
    RAISE EXCEPTION 'cannot create constraint on "%": distributed relations cannot have UNIQUE, EXCLUDE, or PRIMARY KEY constraints that do not include the partition column', table_name;
  END IF;
  IF colocate_with <> 'default' THEN
    SELECT format_type(a.atttypid, NULL) INTO anchor_type
      FROM citus_stand_in_placement p
      JOIN pg_attribute a ON a.attrelid = p.placed_table::regclass AND a.attname = p.dist_column
      WHERE p.placed_table = colocate_with AND p.kind = 'distributed';
    IF anchor_type IS NULL THEN
      RAISE EXCEPTION 'relation % is not distributed', colocate_with;
    END IF;
    IF anchor_type <> column_type THEN
      RAISE EXCEPTION 'cannot colocate tables % and %: distribution column types do not match', table_name, colocate_with;
    END IF;
  END IF;
  INSERT INTO citus_stand_in_placement VALUES (table_name::text, 'distributed', distribution_column, colocate_with);
END $$;

CREATE FUNCTION create_reference_table(table_name regclass) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (
    SELECT 1 FROM pg_constraint c WHERE c.conrelid = table_name AND c.contype = 'f'
      AND NOT EXISTS (SELECT 1 FROM citus_stand_in_placement p WHERE p.placed_table = c.confrelid::regclass::text AND p.kind = 'reference')
  ) THEN
    RAISE EXCEPTION 'cannot create reference table "%": it refers to a table that is not a reference table', table_name;
  END IF;
  INSERT INTO citus_stand_in_placement VALUES (table_name::text, 'reference', NULL, NULL);
END $$;
`;
