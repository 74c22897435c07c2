import assert from 'node:assert/strict';
import { readConnectorDefinitions, type ConnectorDefinition } from '../../connectors/definition.ts';
import { runConnector } from '../../connectors/run-connector.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { writeDefinition } from '../support/registry-fixture.ts';
import { P, PEOPLE_ROWS, startDciHub, type DciHub } from './support/dci-hub.ts';

type Json = Record<string, unknown>;

/** A connector of the consuming hub that reads the providing hub's CRVS API, two people a page, incremental on the birth date. */
function crvsConnector(url: string, token = '${CRVS_TOKEN}'): Json {
  return {
    name: 'spx-crvs-people',
    entity: 'SPX',
    target: { table: 'spx_crvs_people', key: ['national_id'] },
    mode: 'incremental',
    source: {
      kind: 'dci',
      url,
      token,
      query_type: 'predicate',
      query: [
        { expression1: { attribute_name: 'birth_date', operator: 'ge', attribute_value: '1900-01-01' } },
      ],
      page_size: 2,
      cursor: 'birthdate',
      cursor_attribute: 'birth_date',
    },
    columns: {
      national_id: { from: 'identifier', required: true },
      given_name: { from: 'name.given_name' },
      sex: { from: 'sex', codes: { male: 'M', female: 'F' } },
      birth_date: { from: 'birthdate', type: 'date' },
      marital_status: { from: 'marital_status' },
      death_date: { from: 'deathdate', type: 'date', format: 'YYYY-MM-DDTHH:mm:ssZ' },
      mother_national_id: { from: 'parent1_identifier.identifier' },
    },
  };
}

describeEachDatabase('DCI connector source: one hub reads another hub’s DCI API', (db) => {
  let provider: DciHub;
  let consumer: DciHub;
  let token: string;

  const load = async (definition: Json, env: Record<string, string>) => {
    await writeDefinition(consumer.ctx.config.connectorsDir, String(definition.name), definition);
    await prepareWarehouse(consumer.ctx);
    const defs = await readConnectorDefinitions(consumer.ctx.config.connectorsDir);
    const def = defs.find((d) => d.name === definition.name) as ConnectorDefinition;
    return runConnector(def, { ...consumer.ctx, env });
  };
  const rows = () => consumer.ctx.knex('spx_crvs_people').orderBy('national_id').select<Json[]>('*');

  before(async () => {
    provider = await startDciHub(db.url());
    // The consuming hub keeps its own warehouse: a SQLite file of its own whatever the provider runs on.
    consumer = await startDciHub(`sqlite:${provider.dir}/consumer.sqlite`);
    for (const table of ['cspd_personal_info', 'cspd_births', 'cspd_deaths'])
      await provider.grant('SPX', table);
    token = (await provider.createCaller('SPX')).token;
  });
  after(async () => {
    await consumer?.close();
    await provider?.close();
  });

  it('loads every record page by page, then only what is new on an incremental run', async () => {
    const url = `${provider.baseUrl}/dci/crvs/`;
    const first = await load(crvsConnector(url), { CRVS_TOKEN: token });
    assert.equal(first.status, 'succeeded', first.error ?? '');
    assert.equal(first.read, 6);
    assert.equal(first.watermark_to, '2025-06-01');
    const loaded = await rows();
    assert.equal(loaded.length, 6);
    const huda = loaded.find((r) => r.national_id === P.huda)!;
    assert.deepEqual([huda.sex, huda.birth_date, huda.marital_status], ['F', '1951-09-30', 'W']);
    assert.equal(loaded.find((r) => r.national_id === P.khalid)!.death_date, '2025-11-20');
    assert.equal(loaded.find((r) => r.national_id === P.baby)!.mother_national_id, P.amina);

    await provider.reload('cspd-personal-info', [
      ...PEOPLE_ROWS,
      `${P.newborn},رامي,سامر,الحسن,1,2026-02-20,S,H1`,
    ]);
    const next = await load(crvsConnector(url), { CRVS_TOKEN: token });
    assert.equal(next.status, 'succeeded', next.error ?? '');
    assert.equal(next.read, 1, 'only the record past the watermark is read');
    assert.equal((await rows()).length, 7);
  });

  it('fails a run with the registry’s reason and leaves the warehouse as it was', async () => {
    const before = await rows();
    const url = `${provider.baseUrl}/dci/crvs`;
    const refused = await load(crvsConnector(url), { CRVS_TOKEN: 'not-a-token' });
    assert.equal(refused.status, 'failed');
    assert.match(refused.error ?? '', /401: err\.request\.unauthorized/);
    const missing = await load(crvsConnector(url), {});
    assert.match(missing.error ?? '', /environment variable CRVS_TOKEN/);
    const rejected = await load(
      {
        ...crvsConnector(url),
        source: {
          ...(crvsConnector(url).source as Json),
          query: [{ expression1: { attribute_name: 'shoe_size', operator: 'eq', attribute_value: '42' } }],
        },
      },
      { CRVS_TOKEN: token },
    );
    assert.match(rejected.error ?? '', /rjct\.filter\.invalid/);
    assert.deepEqual(await rows(), before);
  });

  it('refuses a definition that cannot be read incrementally', async () => {
    const bad = {
      ...crvsConnector('http://127.0.0.1:1/dci/crvs'),
      source: {
        ...(crvsConnector('http://x/').source as Json),
        query_type: 'idtype-value',
        query: { type: 'UIN', value: P.huda },
      },
    };
    await writeDefinition(consumer.ctx.config.connectorsDir, 'spx-crvs-people', bad);
    await assert.rejects(
      readConnectorDefinitions(consumer.ctx.config.connectorsDir),
      /cursor_attribute: incremental reads add a predicate/,
    );
    await writeDefinition(
      consumer.ctx.config.connectorsDir,
      'spx-crvs-people',
      crvsConnector(`${provider.baseUrl}/dci/crvs`),
    );
  });
});
