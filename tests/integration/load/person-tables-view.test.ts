import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import type { Knex } from 'knex';
import * as postgresView from '../../../warehouse/migrations/016-person-tables-view.ts';
import * as sqliteView from '../../../warehouse/migrations/017-sqlite-person-tables-view.ts';
import { createTempDir, testDatabases } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { idRegistry, validId } from '../../support/registry-fixture.ts';

const IDS = Array.from({ length: 6 }, (_, i) => validId(701 + i));

/** What each database says about hub_person_tables, and the migration that made it a view there. */
interface Relations {
  migration: { up(knex: Knex): Promise<void>; down(knex: Knex): Promise<void> };
  /** 'view' or 'table'. */
  kind(knex: Knex): Promise<string | undefined>;
  /** Changes when the view is replaced, even by an identical one. */
  version(knex: Knex): Promise<unknown>;
  /** The indexes of the table of memberships, by name. */
  indexes(knex: Knex): Promise<string[]>;
}

const RELATIONS: Record<string, Relations> = {
  postgres: {
    migration: postgresView,
    kind: async (knex) => {
      const kind = (
        await knex.raw<{ rows: Array<{ kind: string }> }>(
          "SELECT relkind AS kind FROM pg_class WHERE oid = to_regclass('hub_person_tables')",
        )
      ).rows[0]?.kind;
      return kind === 'v' ? 'view' : kind === 'r' ? 'table' : kind;
    },
    version: async (knex) =>
      (
        await knex.raw<{ rows: Array<{ oid: number }> }>(
          "SELECT to_regclass('hub_person_tables')::oid::int AS oid",
        )
      ).rows[0]?.oid,
    indexes: async (knex) =>
      (
        await knex.raw<{ rows: Array<{ name: string }> }>(
          "SELECT indexname AS name FROM pg_indexes WHERE tablename = 'hub_person_tables' ORDER BY 1",
        )
      ).rows.map((r) => r.name),
  },
  sqlite: {
    migration: sqliteView,
    kind: async (knex) =>
      (
        await knex.raw<Array<{ type: string }>>(
          "SELECT type FROM sqlite_master WHERE name = 'hub_person_tables'",
        )
      )[0]?.type,
    version: async (knex) => (await knex.raw<Array<{ schema_version: number }>>('PRAGMA schema_version'))[0],
    indexes: async (knex) =>
      (
        await knex.raw<Array<{ name: string }>>(
          "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'hub_person_tables' ORDER BY 1",
        )
      ).map((r) => r.name),
  },
};

for (const database of testDatabases) {
  describe(`which registry tables hold a person is a view over the registry tables [${database.name}]`, function () {
    this.timeout(120_000);
    const relations = RELATIONS[database.name]!;
    let url: string;
    let dir: string;
    let ctx: AppContext;

    const setSource = (name: string, ids: string[]) => idRegistry.setIds(dir, name, ids);
    const defineRegistry = (name: string, table: string, key: string[]) =>
      idRegistry.define(ctx.config.connectorsDir, dir, name, table, key);
    const runFull = async (name: string) => {
      const def = (await readConnectorDefinitions(ctx.config.connectorsDir)).find((d) => d.name === name)!;
      const summary = await runConnector(def, ctx, { full: true });
      assert.equal(summary.status, 'succeeded', summary.error ?? '');
    };
    const memberships = async () =>
      (
        await ctx
          .knex('hub_person_tables')
          .orderBy(['national_id', 'table_name'])
          .select<Array<{ national_id: string; table_name: string }>>('national_id', 'table_name')
      ).map((m) => `${m.national_id} ${m.table_name}`);

    before(async () => {
      url = await database.createUrl();
      dir = await createTempDir('hub-person-tables-view-');
      ctx = openTestContext(url, dir);
      await defineRegistry('reg-civil', 'reg_civil', ['national_id']);
      await defineRegistry('reg-cars', 'reg_cars', ['id']);
      await prepareWarehouse(ctx);
    });

    after(async () => {
      await closeContext(ctx);
      await database.dropUrl(url);
      await rm(dir, { recursive: true, force: true });
    });

    it('two registries loaded at once both swap in, and the view lists each person once per table holding them', async () => {
      const [a, b, c, d] = IDS;
      setSource('reg-civil', [a!, b!, c!]);
      // A car registry lists an owner once per car.
      setSource('reg-cars', [b!, d!, d!, d!]);
      await Promise.all([runFull('reg-civil'), runFull('reg-cars')]);
      assert.deepEqual(await memberships(), [
        `${a} reg_civil`,
        `${b} reg_cars`,
        `${b} reg_civil`,
        `${c} reg_civil`,
        `${d} reg_cars`,
      ]);
      assert.equal(await relations.kind(ctx.knex), 'view');
      // A reload that drops a person and adds one: the view follows the swapped-in table.
      setSource('reg-civil', [b!, IDS[4]!]);
      await runFull('reg-civil');
      assert.deepEqual(await memberships(), [
        `${b} reg_cars`,
        `${b} reg_civil`,
        `${d} reg_cars`,
        `${IDS[4]} reg_civil`,
      ]);
    });

    // SQLite has one writer: no other transaction can hold a new person while a load runs.
    const postgresOnly = database.name === 'postgres' ? it : () => undefined;
    postgresOnly(
      'a full load whose new person another transaction adds at the same moment waits for it, then swaps in',
      async () => {
        const fresh = validId(720);
        setSource('reg-civil', [IDS[1]!, fresh]);
        const other = await ctx.knex.transaction();
        try {
          await other('hub_persons').insert({
            national_id: fresh,
            first_seen_at: '2026-01-01T00:00:00.000Z',
          });
          const def = (await readConnectorDefinitions(ctx.config.connectorsDir)).find(
            (d) => d.name === 'reg-civil',
          )!;
          const loading = runConnector(def, ctx, { full: true });
          // The load's insert of new persons waits on the other transaction's row.
          for (let waited = 0; ; waited += 20) {
            const waiting = await ctx.knex.raw<{ rows: Array<{ n: string }> }>(
              "SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO hub_persons%'",
            );
            if (Number(waiting.rows[0]!.n) > 0) break;
            assert.ok(waited < 30_000, 'the load never reached the person key');
            await new Promise((resolve) => setTimeout(resolve, 20));
          }
          await other.commit();
          const summary = await loading;
          assert.equal(summary.status, 'succeeded', summary.error ?? '');
        } finally {
          if (!other.isCompleted()) await other.rollback();
        }
        assert.deepEqual(await ctx.knex('hub_persons').where({ national_id: fresh }).pluck('first_seen_at'), [
          '2026-01-01T00:00:00.000Z',
        ]);
        assert.ok((await memberships()).includes(`${fresh} reg_civil`));
      },
    );

    it('follows the catalog: a new registry joins the view, and an unchanged catalog leaves the view as it is', async () => {
      const before = await relations.version(ctx.knex);
      await prepareWarehouse(ctx);
      assert.deepEqual(await relations.version(ctx.knex), before, 'the same view, not a replaced one');

      await defineRegistry('reg-pets', 'reg_pets', ['id']);
      await prepareWarehouse(ctx);
      setSource('reg-pets', [IDS[5]!]);
      await runFull('reg-pets');
      assert.ok((await memberships()).includes(`${IDS[5]} reg_pets`));
    });

    it('its migration goes down to the table of memberships and up to the view, with the same rows both ways', async () => {
      const held = await memberships();
      await ctx.knex.transaction((trx) => relations.migration.down(trx));
      assert.equal(await relations.kind(ctx.knex), 'table');
      assert.deepEqual(await memberships(), held);
      assert.ok((await relations.indexes(ctx.knex)).includes('hub_person_tables_national_id_index'));

      await ctx.knex.transaction((trx) => relations.migration.up(trx));
      assert.equal(await relations.kind(ctx.knex), 'view');
      assert.deepEqual(await memberships(), held);
      // Loads go on through the view.
      setSource('reg-cars', [IDS[0]!]);
      await runFull('reg-cars');
      assert.ok((await memberships()).includes(`${IDS[0]} reg_cars`));
    });
  });
}
