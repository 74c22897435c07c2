import assert from 'node:assert/strict';
import { indexWhoRead, WHO_READ_TABLE } from '../../warehouse/audit/who-read-index.ts';
import { PERSON, startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import {
  createPortalUser,
  PortalClient,
  signIn,
  type PortalClient as Client,
} from '../support/portal-client.ts';

describeEachDatabase('Portal settings and audit screens', (db) => {
  let hub: ApiHub;
  let operator: Client;
  let nafAdmin: Client;

  const newSecret = (html: string) => ({
    client_id: /data-testid="client-id">([^<]+)</.exec(html)?.[1] ?? '',
    client_secret: /data-testid="client-secret">([^<]+)</.exec(html)?.[1] ?? '',
  });

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name']);
    operator = await signIn(hub, await createPortalUser(hub, 'hub.operator', 'NAF', 'super-admin'));
    nafAdmin = await signIn(hub, await createPortalUser(hub, 'naf.clients', 'NAF', 'entity-admin'));
  });
  after(() => hub.close());

  it('creates an API client for its entity, shows the secret once, and the secret gets a token', async () => {
    await nafAdmin.get('/settings/clients');
    const created = await nafAdmin.post('/settings/clients', {
      name: 'NAF MIS',
      rate_per_minute: '30',
      allowed_ips: '',
    });
    assert.equal(created.status, 200);
    const credentials = newSecret(created.text);
    assert.match(credentials.client_id, /^naf-/);
    const token = await hub.fetchToken(credentials);
    assert.equal((await hub.call('GET', `/api/v1/persons/${PERSON.fatima}`, { token })).status, 200);
    const list = await nafAdmin.get('/settings/clients');
    assert.doesNotMatch(list.text, new RegExp(credentials.client_secret), 'shown only once');

    await nafAdmin.post(`/settings/clients/${credentials.client_id}/disable`, {});
    assert.equal(
      (
        await hub.call('POST', '/api/v1/token', {
          json: { grant_type: 'client_credentials', ...credentials },
        })
      ).status,
      401,
    );
    await nafAdmin.get('/settings/clients');
    await nafAdmin.post(`/settings/clients/${credentials.client_id}/enable`, {});
    await hub.fetchToken(credentials);
    await nafAdmin.get('/settings/clients');
    const rotated = newSecret(
      (await nafAdmin.post(`/settings/clients/${credentials.client_id}/rotate`, {})).text,
    );
    assert.notEqual(rotated.client_secret, credentials.client_secret);
    assert.equal(
      (
        await hub.call('POST', '/api/v1/token', {
          json: { grant_type: 'client_credentials', ...credentials },
        })
      ).status,
      401,
    );
    await hub.fetchToken(rotated);
    await nafAdmin.get('/settings/clients');
    const limited = await nafAdmin.post(`/settings/clients/${credentials.client_id}/limits`, {
      rate_per_minute: '0',
      rate_per_day: '10',
      allowed_ips: 'not-an-ip',
    });
    assert.equal(limited.status, 400);
    const row = await hub.ctx
      .knex('hub_clients')
      .where({ client_id: credentials.client_id })
      .first<{ rate_per_minute: number; allowed_ips: string | null }>();
    assert.equal(Number(row?.rate_per_minute), 30, 'a refused change changes nothing');
  });

  it("keeps an entity admin away from another entity's clients and from the operator's screens", async () => {
    const other = await hub.createClient('REG');
    await nafAdmin.get('/settings/clients');
    assert.equal((await nafAdmin.post(`/settings/clients/${other.client_id}/disable`, {})).status, 403);
    assert.equal(
      (await hub.ctx.knex('hub_clients').where({ client_id: other.client_id }).first<{ status: string }>())
        ?.status,
      'active',
    );
    assert.doesNotMatch((await nafAdmin.get('/settings/clients')).text, new RegExp(other.client_id));
    assert.equal(
      (await nafAdmin.post('/settings/clients', { entity: 'REG', name: 'x' })).status,
      200,
      'the entity field is ignored for an entity admin',
    );
    assert.equal((await hub.ctx.knex('hub_clients').where({ entity: 'REG' })).length, 1);
    // The audit screen is open to every role, scoped to its entity (tests/portal/audit-scope.test.ts).
    for (const path of ['/settings/users', '/settings/entities', '/settings/connectors']) {
      assert.equal((await nafAdmin.get(path)).status, 403, path);
    }
  });

  it('lets the operator create, disable and reset users', async () => {
    await operator.get('/settings/users');
    const created = await operator.post('/settings/users', {
      username: 'new.clerk',
      entity: 'NAF',
      role: 'entity-admin',
    });
    const password = /data-testid="new-password">([^<]+)</.exec(created.text)?.[1];
    assert.ok(password);
    assert.equal(
      (await operator.post('/settings/users', { username: 'X', entity: 'NAF', role: 'entity-admin' })).status,
      400,
    );
    await operator.post('/settings/users/new.clerk/disable', {});
    const visitor = new PortalClient(hub.baseUrl);
    await visitor.get('/login');
    assert.equal((await visitor.post('/login', { username: 'new.clerk', password })).status, 401);
    await operator.get('/settings/users');
    await operator.post('/settings/users/new.clerk/enable', {});
    await operator.post('/settings/users/new.clerk/reset-code', {});
    const row = await hub.ctx
      .knex('hub_users')
      .where({ username: 'new.clerk' })
      .first<{ status: string; totp_enrolled_at: string | null }>();
    assert.equal(row?.status, 'active');
    assert.equal(row?.totp_enrolled_at, null);
  });

  it('registers a consuming entity and refuses a bad code', async () => {
    await operator.get('/settings/entities');
    assert.equal(
      (
        await operator.post('/settings/entities', {
          code: 'MOH',
          label_en: 'Ministry of Health',
          label_ar: 'وزارة الصحة',
        })
      ).location,
      '/settings/entities',
    );
    assert.match((await operator.get('/settings/entities')).text, /وزارة الصحة/);
    assert.equal(
      (await operator.post('/settings/entities', { code: '1-bad', label_en: 'x', label_ar: 'y' })).status,
      400,
    );
    assert.equal(
      (await operator.post('/settings/entities', { code: 'MOH', label_en: 'x', label_ar: 'y' })).status,
      409,
    );
  });

  it("shows a custodian its own connectors, runs one now and shows the run's counts", async () => {
    const custodian = await signIn(hub, await createPortalUser(hub, 'veh.custodian', 'VEH', 'custodian'));
    const list = await custodian.get('/settings/connectors');
    assert.match(list.text, /veh-vehicles/);
    assert.doesNotMatch(list.text, /reg-people/);
    assert.equal((await custodian.get('/settings/connectors/reg-people')).status, 404);
    await custodian.get('/settings/connectors');
    assert.equal((await custodian.post('/settings/connectors/reg-people/run', {})).status, 404);
    const ran = await custodian.post('/settings/connectors/veh-vehicles/run', { full: 'yes' });
    const runPath = /^\/settings\/connectors\/veh-vehicles\/runs\/\d+$/.exec(ran.location ?? '')?.[0];
    assert.ok(runPath !== undefined, `Run now leads to the run's page, not ${ran.location}`);
    let detail = await custodian.get(runPath);
    for (let i = 0; i < 400 && !/data-testid="run-result"/.test(detail.text); i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      detail = await custodian.get(runPath);
    }
    assert.match(detail.text, /data-testid="run-result">[^<]*succeeded · Read 4/);
    const csv = await custodian.get(`${runPath}/rejects.csv`);
    assert.equal(csv.status, 200);
    assert.match(csv.text, /^run_id,source_key,reason,raw_row/);
  });

  it('filters, pages and exports the audit log, verifies the chain and answers who read a person', async () => {
    const { token } = await hub.createCaller('NAF');
    await hub.call('GET', `/api/v1/persons/${PERSON.sara}`, { token });
    const filtered = await operator.get('/audit?action=login&actor=naf.clients');
    assert.equal(filtered.status, 200);
    const actions = [...filtered.text.matchAll(/<td>(login|logout|grant|api\.call)<\/td>/g)].map((m) => m[1]);
    assert.ok(actions.length > 0 && actions.every((a) => a === 'login'), actions.join(','));
    assert.equal((await operator.get('/audit?from=yesterday')).status, 400);
    const csv = await operator.get('/audit/export.csv?action=api.call');
    assert.match(csv.text, /^id,at,actor,entity,action,target,details\n/);
    assert.match(
      csv.text,
      new RegExp(
        `api\\.call,GET /api/v1/persons/\\{national_id\\},"\\{[^\\n]*""params"":\\{""national_id"":""${PERSON.sara}""`,
      ),
    );
    await operator.get('/audit');
    const verified = await operator.post('/audit/verify', {});
    assert.match(verified.text, /data-testid="verify-result"><p>The audit log verifies/);
    const who = await operator.get(`/audit?national_id=${PERSON.sara}`);
    assert.match(who.text, /data-testid="who-read"[\s\S]*NAF[\s\S]*reg_people\.full_name/);
  });

  it('verify names a who-read index that lost the row of a read, as hub audit verify does, and audits what it found', async () => {
    const { token } = await hub.createCaller('NAF');
    await hub.call('GET', `/api/v1/persons/${PERSON.fatima}`, { token });
    await indexWhoRead(hub.ctx.knex, { flushTail: true });
    const row = await hub.ctx
      .knex(WHO_READ_TABLE)
      .where({ national_id: PERSON.fatima })
      .orderBy('audit_id', 'desc')
      .first<{ run: number | string; national_id: string; audit_id: number | string }>('*');
    assert.ok(row !== undefined, 'the read is in the index');
    await hub.ctx.knex(WHO_READ_TABLE).where(row).delete();
    try {
      const broken = await operator.post('/audit/verify', {});
      assert.match(broken.text, /data-testid="verify-result"><p>The audit log does not verify:/);
      assert.match(broken.text, new RegExp(`<li>who-read index: run ${row.run} lacks 1 subject rows`));
      const event = await hub.ctx
        .knex('hub_audit')
        .where({ action: 'audit.verify' })
        .orderBy('id', 'desc')
        .first<{ actor: string; details: string } | undefined>('actor', 'details');
      assert.ok(event !== undefined, 'the check is audited');
      const details = JSON.parse(event.details) as { ok: boolean; problems: string[] };
      assert.equal(event.actor, 'hub.operator');
      assert.equal(details.ok, false);
      assert.match(details.problems.join('\n'), new RegExp(`who-read index: run ${row.run} lacks 1`));
    } finally {
      await hub.ctx.knex(WHO_READ_TABLE).insert(row);
    }
    const mended = await operator.post('/audit/verify', {});
    assert.match(mended.text, /data-testid="verify-result"><p>The audit log verifies/);
  });
});
