import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';

const A = validId(501);
const B = validId(502);
const C = validId(503);

describeEachDatabase(
  'incremental runs keep the person key right when a record moves to another person',
  (db) => {
    let dir: string;
    let ctx: AppContext;
    let sourceFile: string;
    let tick = 0;

    /** The vehicle registry changes a plate's owner (or cancels it) and stamps the row. */
    const setOwner = (plate: string, owner: string, deleted = 0) => {
      const source = new Database(sourceFile);
      source
        .prepare(
          'INSERT INTO vehicles (PLATE, OWNER_NID, DELETED, UPDATED) VALUES (?, ?, ?, ?) ' +
            'ON CONFLICT (PLATE) DO UPDATE SET OWNER_NID = excluded.OWNER_NID, DELETED = excluded.DELETED, UPDATED = excluded.UPDATED',
        )
        .run(plate, owner, deleted, ++tick);
      source.close();
    };
    const run = async () => {
      const summary = await runConnector((await readConnectorDefinitions(ctx.config.connectorsDir))[0]!, ctx);
      assert.equal(summary.status, 'succeeded', summary.error ?? '');
      return summary;
    };
    const members = () =>
      ctx
        .knex('hub_person_tables')
        .where({ table_name: 'veh_cars' })
        .orderBy('national_id')
        .pluck('national_id');
    const persons = () =>
      ctx.knex('hub_persons').whereIn('national_id', [A, B, C]).orderBy('national_id').pluck('national_id');

    before(async () => {
      dir = await createTempDir('hub-inc-person-key-');
      sourceFile = path.join(dir, 'vehicles.sqlite');
      const source = new Database(sourceFile);
      source.exec(
        'CREATE TABLE vehicles (PLATE TEXT PRIMARY KEY, OWNER_NID TEXT, DELETED INTEGER, UPDATED INTEGER)',
      );
      source.close();
      ctx = openTestContext(db.url(), dir);
      await writeDefinition(ctx.config.connectorsDir, 'veh-cars', {
        name: 'veh-cars',
        entity: 'VEH',
        target: { table: 'veh_cars', key: ['plate'] },
        source: {
          kind: 'sql',
          client: 'better-sqlite3',
          connection: { filename: sourceFile },
          table: 'vehicles',
          cursor: 'UPDATED',
          deleted_flag: { column: 'DELETED', value: 1 },
        },
        mode: 'incremental',
        columns: {
          national_id: { from: 'OWNER_NID', required: true },
          plate: { from: 'PLATE', required: true },
        },
        batch_size: 2,
      });
      await prepareWarehouse(ctx);
    });

    after(async () => {
      await closeContext(ctx);
      await rm(dir, { recursive: true, force: true });
    });

    it('the first run into the empty table lists every owner', async () => {
      setOwner('P-1', A);
      setOwner('P-2', A);
      setOwner('P-3', B);
      const summary = await run();
      assert.deepEqual([summary.inserted, summary.updated], [3, 0]);
      assert.deepEqual(await members(), [A, B]);
    });

    it('a sold car takes its old owner out of the table when it was their last, and brings the new one in', async () => {
      setOwner('P-3', C);
      const summary = await run();
      assert.deepEqual([summary.read, summary.inserted, summary.updated], [1, 0, 1]);
      assert.deepEqual(await members(), [A, C]);
      assert.deepEqual(await persons(), [A, B, C], 'a person once seen stays in hub_persons');
    });

    it('an owner keeps their place while one of their cars is left', async () => {
      setOwner('P-1', B);
      await run();
      assert.deepEqual(await members(), [A, B, C]);
      setOwner('P-2', B);
      await run();
      assert.deepEqual(await members(), [B, C]);
    });

    it('a cancelled registration takes its owner out with it', async () => {
      setOwner('P-3', C, 1);
      const summary = await run();
      assert.equal(summary.deleted, 1);
      assert.deepEqual(await members(), [B]);
      assert.deepEqual(await ctx.knex('veh_cars').orderBy('plate').pluck('plate'), ['P-1', 'P-2']);
    });
  },
);
