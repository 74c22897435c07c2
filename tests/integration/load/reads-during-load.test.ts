import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { runConnectorByName, prepareWarehouse } from '../../../server/services/connector-service.ts';
import { fetchAbility, createAbilityCache } from '../../../privileges/ability-cache.ts';
import { describeEachDatabase } from '../../support/databases.ts';
import { PERSON, startApiHub, type ApiHub } from '../../support/api-hub.ts';
import { writeDefinition } from '../../support/registry-fixture.ts';

interface PausedRegistry {
  url: string;
  /** Resolves when the connector asks for page 2, which is then held until release(). */
  secondPageAsked: Promise<void>;
  release(): void;
  close(): Promise<void>;
}

const FINES = [
  { nid: PERSON.mohammad, ref: 'F-1', amount: 20, updated: 1 },
  { nid: PERSON.fatima, ref: 'F-2', amount: 35, updated: 2 },
  { nid: PERSON.sara, ref: 'F-3', amount: 10, updated: 3 },
  { nid: PERSON.omar, ref: 'F-4', amount: 50, updated: 4 },
];

/** A registry API that answers page 1 at once and holds page 2: a load paused at a known point, mid-source. */
async function startPausedRegistry(): Promise<PausedRegistry> {
  let asked!: () => void;
  let release!: () => void;
  const secondPageAsked = new Promise<void>((resolve) => (asked = resolve));
  const released = new Promise<void>((resolve) => (release = resolve));
  const server = http.createServer((req, res) => {
    const page = Number(new URL(req.url ?? '/', 'http://localhost').searchParams.get('page') ?? '1');
    const answer = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ items: FINES.slice((page - 1) * 2, page * 2) }));
    };
    if (page === 2) {
      asked();
      void released.then(answer);
    } else answer();
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/fines`,
    secondPageAsked,
    release,
    close: () => {
      server.closeAllConnections();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const finesDefinition = (url: string) => ({
  name: 'trf-fines',
  entity: 'TRF',
  source: {
    kind: 'http',
    url,
    records: 'items',
    pagination: { style: 'page', page_size: 2 },
    cursor: 'updated',
  },
  target: { table: 'trf_fines', key: ['reference'] },
  mode: 'incremental',
  columns: {
    national_id: { from: 'nid', required: true },
    reference: { from: 'ref', required: true },
    amount: { type: 'number' },
  },
  batch_size: 2,
});

describeEachDatabase('API reads while a load runs', (db) => {
  let hub: ApiHub;
  let token: string;

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people');
    ({ token } = await hub.createCaller('NAF'));
  });

  after(async () => {
    await hub.close();
  });

  const lookUp = (nationalId: string) => hub.call('GET', `/api/v1/persons/${nationalId}`, { token });
  const auditedLookups = async () =>
    Number(
      (
        await hub.ctx
          .knex('hub_audit')
          .where({ action: 'api.call' })
          .count({ n: '*' })
          .first<{ n: number | string }>()
      )?.n,
    );

  for (const mode of ['incremental', 'full'] as const) {
    it(`person lookups are answered and audited while a ${mode} load waits on its source`, async () => {
      const registry = await startPausedRegistry();
      try {
        await writeDefinition(hub.ctx.config.connectorsDir, 'trf-fines', finesDefinition(registry.url));
        await prepareWarehouse(hub.ctx);
        const run = runConnectorByName(hub.ctx, 'trf-fines', { full: mode === 'full' });
        await registry.secondPageAsked;

        // The load has read page 1 and waits for page 2: it must not hold the warehouse meanwhile.
        const audited = await auditedLookups();
        for (const person of [PERSON.mohammad, PERSON.fatima, PERSON.layla]) {
          const res = await lookUp(person);
          assert.equal(res.status, 200, res.text);
          assert.equal((res.body as { national_id: string }).national_id, person);
        }
        assert.equal(
          await auditedLookups(),
          audited + 3,
          'each lookup was audited before its answer, during the load',
        );

        registry.release();
        const summary = await run;
        assert.equal(summary.status, 'succeeded', summary.error ?? '');
        assert.equal(
          Number((await hub.ctx.knex('trf_fines').count({ n: '*' }).first<{ n: number | string }>())?.n),
          4,
        );
      } finally {
        registry.release();
        await registry.close();
      }
    });
  }

  it('a read through the reader completes while a write transaction is open, and sees the last commit', async () => {
    let inserted!: () => void;
    let finish!: () => void;
    const written = new Promise<void>((resolve) => (inserted = resolve));
    const held = new Promise<void>((resolve) => (finish = resolve));
    const writing = hub.ctx.knex.transaction(async (trx) => {
      await trx('hub_entities').insert({ code: 'UNCOMMITTED', label_en: 'not yet', label_ar: 'ليس بعد' });
      inserted();
      await held;
    });
    try {
      await written;
      const seen = await hub.ctx
        .reader('hub_entities')
        .where({ code: 'UNCOMMITTED' })
        .first<{ code: string } | undefined>('code');
      assert.equal(seen, undefined, 'a reader sees only committed rows');
      const person = await hub.ctx
        .reader('reg_people')
        .where({ national_id: PERSON.mohammad })
        .first<{ national_id: string }>();
      assert.equal(person?.national_id, PERSON.mohammad);
      const ability = await fetchAbility(hub.ctx, createAbilityCache(), 'NAF');
      assert.equal(ability.can('read', 'reg_people'), true);
    } finally {
      finish();
      await writing;
    }
    assert.ok(
      await hub.ctx.reader('hub_entities').where({ code: 'UNCOMMITTED' }).first(),
      'committed, then seen',
    );
  });
});
