import assert from 'node:assert/strict';
import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { readConnectorDefinitions, type ConnectorDefinition } from '../../../connectors/definition.ts';
import { runConnector } from '../../../connectors/run-connector.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { openTestContext } from '../../support/hub-context.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';
import {
  startHttpRegistry,
  vehicleDefinition,
  type HttpRegistry,
} from '../../support/registry-http-server.ts';

const csvLines = (from: number, to: number, surname: string) =>
  Array.from(
    { length: to - from + 1 },
    (_, i) => `${validId(from + i)};${surname} ${from + i};${1990 + (i % 20)}0101`,
  );

describeEachDatabase('a source that fails in the middle of a load', (db) => {
  let dir: string;
  let ctx: AppContext;
  let registry: HttpRegistry;
  const env = { VEH_TOKEN: 'secret-token' };
  const byName = async (name: string): Promise<ConnectorDefinition> =>
    (await readConnectorDefinitions(ctx.config.connectorsDir)).find((d) => d.name === name)!;
  const csvFile = () => path.join(dir, 'insured.csv');
  const tableRows = (table: string, order: string) => ctx.knex(table).select('*').orderBy(order);

  before(async () => {
    dir = await createTempDir('hub-failed-load-');
    ctx = { ...openTestContext(db.url(), dir) };
    ctx = Object.assign(ctx, { env });
    registry = await startHttpRegistry();
    await writeDefinition(ctx.config.connectorsDir, 'ins-insured', {
      name: 'ins-insured',
      entity: 'INS',
      target: { table: 'ins_insured' },
      source: { kind: 'csv', path: csvFile(), delimiter: ';', header: ['NID', 'NAME', 'DOB'] },
      columns: {
        national_id: { from: 'NID', required: true },
        full_name: { from: 'NAME', required: true },
        birth_date: { from: 'DOB', type: 'date', format: 'YYYYMMDD' },
      },
      batch_size: 10,
    });
    await writeDefinition(ctx.config.connectorsDir, 'veh-vehicles', vehicleDefinition(registry.url));
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await registry.close();
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('full load: a CSV that breaks after 35 rows leaves the previous table, row for row, and the run failed', async () => {
    await writeFile(csvFile(), csvLines(1, 50, 'الأول').join('\n') + '\n');
    const first = await runConnector(await byName('ins-insured'), ctx);
    assert.equal(first.status, 'succeeded', first.error ?? '');
    const before = await tableRows('ins_insured', 'national_id');
    assert.equal(before.length, 50);

    await writeFile(
      csvFile(),
      [
        ...csvLines(1, 35, 'الثاني'),
        `${validId(36)};"unclosed quote;19900101`,
        ...csvLines(37, 60, 'الثاني'),
      ].join('\n'),
    );
    const failed = await runConnector(await byName('ins-insured'), ctx);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error ?? '', /quote/i);
    assert.deepEqual(await tableRows('ins_insured', 'national_id'), before);
    assert.equal(await ctx.knex.schema.hasTable('ins_insured__next'), false);
    const run = await ctx
      .knex('hub_connector_runs')
      .where({ id: failed.run_id })
      .first<{ status: string; error: string }>();
    assert.equal(run.status, 'failed');
  });

  it('full load: the next run completes and the warehouse matches the source row for row', async () => {
    await writeFile(csvFile(), csvLines(1, 60, 'الثالث').join('\n') + '\n');
    const summary = await runConnector(await byName('ins-insured'), ctx);
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    const rows = (await tableRows('ins_insured', 'national_id')) as Array<{
      national_id: string;
      full_name: string;
      birth_date: string;
    }>;
    const expected = csvLines(1, 60, 'الثالث')
      .map((line) => line.split(';'))
      .map(([nid, name, dob]) => ({
        national_id: nid,
        full_name: name,
        birth_date: `${dob!.slice(0, 4)}-01-01`,
      }))
      .sort((a, b) => a.national_id!.localeCompare(b.national_id!));
    assert.deepEqual(rows, expected);
    const members = await ctx
      .knex('hub_person_tables')
      .where({ table_name: 'ins_insured' })
      .count({ n: '*' })
      .first<{ n: number | string }>();
    assert.equal(Number(members?.n), 60);
  });

  it('incremental load: an HTTP registry failing on page 3 changes nothing and keeps the watermark', async () => {
    registry.records = Array.from({ length: 10 }, (_, i) => ({
      id: validId(100 + i),
      name: `مالك ${i}`,
      plate: `P-${i}`,
      updated: i + 1,
    }));
    const first = await runConnector(await byName('veh-vehicles'), ctx);
    assert.equal(first.status, 'succeeded', first.error ?? '');
    assert.deepEqual([first.inserted, first.watermark_to], [10, '10']);
    const before = await tableRows('veh_vehicles', 'registration_number');

    registry.records = registry.records.map((r, i) =>
      i < 9 ? { ...r, name: `${r.name} (جديد)`, updated: 20 + i } : r,
    );
    registry.records.push({ id: validId(200), name: 'مالك جديد', plate: 'P-NEW', updated: 40 });
    registry.failOnPage = 3;
    const failed = await runConnector(await byName('veh-vehicles'), ctx);
    assert.equal(failed.status, 'failed');
    assert.match(failed.error ?? '', /500/);
    assert.deepEqual(await tableRows('veh_vehicles', 'registration_number'), before);
    const state = await ctx
      .knex('hub_connectors')
      .where({ name: 'veh-vehicles' })
      .first<{ watermark: string }>();
    assert.equal(state.watermark, '10');

    registry.failOnPage = null;
    const rerun = await runConnector(await byName('veh-vehicles'), ctx);
    assert.equal(rerun.status, 'succeeded', rerun.error ?? '');
    assert.deepEqual([rerun.read, rerun.inserted, rerun.updated, rerun.watermark_to], [10, 1, 9, '40']);
    const rows = (await tableRows('veh_vehicles', 'registration_number')) as Array<{
      national_id: string;
      registration_number: string;
      owner_name: string;
    }>;
    const expected = registry.records
      .map((r) => ({ national_id: r.id, registration_number: r.plate, owner_name: r.name }))
      .sort((a, b) => a.registration_number.localeCompare(b.registration_number));
    assert.deepEqual(rows, expected);
  });

  it('incremental load over HTTP applies soft deletes sent by the registry', async () => {
    registry.records = registry.records.map((r) =>
      r.plate === 'P-0' ? { ...r, deleted: true, updated: 50 } : r,
    );
    const summary = await runConnector(await byName('veh-vehicles'), ctx);
    assert.deepEqual([summary.status, summary.read, summary.deleted], ['succeeded', 1, 1]);
    assert.equal(await ctx.knex('veh_vehicles').where({ registration_number: 'P-0' }).first(), undefined);
  });

  it('fails the run with a clear error when the secret for the Authorization header is missing', async () => {
    const withoutSecret = Object.assign({}, ctx, { env: {} });
    const summary = await runConnector(await byName('veh-vehicles'), withoutSecret);
    assert.equal(summary.status, 'failed');
    assert.match(summary.error ?? '', /VEH_TOKEN/);
  });
});
