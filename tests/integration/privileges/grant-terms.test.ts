import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createAbilityCache, fetchAbility, fetchGrantsVersion } from '../../../privileges/ability-cache.ts';
import type { Actor } from '../../../privileges/actor.ts';
import {
  fetchGrants,
  grantAccess,
  revokeAccess,
  type AccessInput,
  type GrantInput,
} from '../../../privileges/grants.ts';
import { previewRevoke } from '../../../privileges/preview-revoke.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { createClient } from '../../../server/services/client-service.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { saveQuery } from '../../../server/services/query-service.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { createManualClock, GRANT_TERMS, openTestContext } from '../../support/hub-context.ts';
import { isHubError } from '../../support/hub-errors.ts';
import { writeGrantRegistries } from '../../support/registry-fixture.ts';
import { countAuditRows } from '../../support/audit-rows.ts';

const operator: Actor = { name: 'test-operator', role: 'super-admin', entity: null };
const nafAdmin: Actor = { name: 'naf-admin', role: 'entity-admin', entity: 'NAF' };
const HOUR = 3600_000;

describeEachDatabase('privileges: purpose, legal basis, expiry and the revoke preview', (db) => {
  let dir: string;
  let ctx: AppContext;
  const clock = createManualClock('2026-04-01T08:00:00.000Z');

  const snapshot = async () => ({
    grants: await ctx.knex('hub_grants').orderBy(['entity', 'table_name', 'column_name']).select('*'),
    version: await fetchGrantsVersion(ctx.knex),
    audit: await countAuditRows(ctx.knex),
    queries: await ctx.knex('hub_queries').orderBy('name').select('*'),
    clients: await ctx.knex('hub_clients').orderBy('client_id').select('client_id', 'status'),
  });
  // Most changes here are the operator's on the usual terms; a test passes only what differs.
  const grant = (consumer: string, table: string, columns: string[], overrides: Partial<GrantInput> = {}) =>
    grantAccess(ctx, { ...GRANT_TERMS, consumer, table, columns, actor: operator, ...overrides });
  const revoke = (consumer: string, table: string, columns: string[], overrides: Partial<AccessInput> = {}) =>
    revokeAccess(ctx, { consumer, table, columns, actor: operator, ...overrides });
  const preview = (
    consumer: string,
    table: string,
    columns: string[],
    overrides: Partial<AccessInput> = {},
  ) => previewRevoke(ctx, { consumer, table, columns, actor: operator, ...overrides });

  before(async () => {
    dir = await createTempDir('hub-grant-terms-');
    ctx = openTestContext(db.url(), dir, { clock });
    await writeGrantRegistries(ctx.config.connectorsDir, ['national_id', 'employer_name', 'monthly_salary']);
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('refuses a new grant without a purpose or a legal basis, or with an expiry that has passed, and writes nothing', async () => {
    const before = await snapshot();
    const base = { consumer: 'NAF', table: 'ssc_insured', columns: [], actor: operator };
    await assert.rejects(
      grantAccess(ctx, { ...base, purpose: '  ', legalBasis: GRANT_TERMS.legalBasis }),
      isHubError('invalid_request', 400, /^purpose: /),
    );
    await assert.rejects(
      grantAccess(ctx, { ...base, purpose: GRANT_TERMS.purpose, legalBasis: '' }),
      isHubError('invalid_request', 400, /^legal_basis: /),
    );
    await assert.rejects(
      grantAccess(ctx, { ...base, ...GRANT_TERMS, purpose: 'two\nlines' }),
      isHubError('invalid_request', 400, /^purpose: at most 500 characters on one line/),
    );
    await assert.rejects(
      grantAccess(ctx, { ...base, ...GRANT_TERMS, expires: '2026-03-31' }),
      isHubError('invalid_request', 400, /^expires: 2026-03-31 has already passed/),
    );
    for (const bad of [
      '2026-02-30',
      'next week',
      '2026-05-01T10:00:00',
      "2026-05-01'; DROP TABLE hub_grants; --",
    ]) {
      await assert.rejects(
        grantAccess(ctx, { ...base, ...GRANT_TERMS, expires: bad }),
        isHubError('invalid_request', 400, /^expires: /),
      );
    }
    // An entity admin is refused for who it is, before what it wrote is looked at.
    await assert.rejects(
      grantAccess(ctx, { ...base, actor: nafAdmin, purpose: '', legalBasis: '' }),
      isHubError('forbidden', 403),
    );
    assert.deepEqual(await snapshot(), before);
  });

  it('an expired grant stops counting at its expiry with no one acting, even for an ability already cached', async () => {
    // Counts through 2026-04-02 (UTC): until 2026-04-03T00:00Z.
    await grant('WFP', 'ssc_insured', [], { expires: '2026-04-02' });
    // A later expiry on another table: only the first expiry may end the cached ability's validity.
    await grant('WFP', 'cspd_people', ['national_id', 'gender'], { expires: '2026-04-10T12:00:00+02:00' });
    const cache = createAbilityCache();
    const version = await fetchGrantsVersion(ctx.knex);
    const first = await fetchAbility(ctx, cache, 'WFP');
    assert.equal(first.can('read', 'ssc_insured', 'monthly_salary'), true);
    assert.equal(await fetchAbility(ctx, cache, 'WFP'), first, 'before any expiry the cached ability serves');

    clock.advance(40 * HOUR - 1); // 2026-04-02T23:59:59.999Z: the last moment of the last day
    assert.equal((await fetchAbility(ctx, cache, 'WFP')).can('read', 'ssc_insured'), true);
    clock.advance(1);
    const expired = await fetchAbility(ctx, cache, 'WFP');
    assert.equal(expired.can('read', 'ssc_insured'), false, 'the expired table grant still counted');
    assert.equal(expired.can('read', 'cspd_people', 'gender'), true);
    assert.equal(await fetchGrantsVersion(ctx.knex), version, 'nobody wrote: the version did not move');
    assert.equal(
      await fetchAbility(ctx, cache, 'WFP'),
      expired,
      'the rebuilt ability is cached until the next expiry',
    );

    clock.advance(7 * 24 * HOUR + 10 * HOUR); // 2026-04-10T10:00Z, the second expiry
    assert.equal((await fetchAbility(ctx, cache, 'WFP')).can('read', 'cspd_people'), false);

    const listed = await fetchGrants(ctx, { entity: 'WFP' });
    assert.deepEqual(
      listed.map((g) => [g.table, g.column, g.expiresAt, g.active]),
      [
        ['cspd_people', 'gender', '2026-04-10T10:00:00.000Z', false],
        ['cspd_people', 'national_id', '2026-04-10T10:00:00.000Z', false],
        ['ssc_insured', null, '2026-04-03T00:00:00.000Z', false],
      ],
    );
  });

  it('granting again renews the terms; an expired grant reads as none and is replaced', async () => {
    await grant('WFP', 'ssc_insured', ['national_id']);
    assert.deepEqual(
      (await fetchGrants(ctx, { entity: 'WFP', table: 'ssc_insured' })).map((g) => [
        g.column,
        g.expiresAt,
        g.active,
      ]),
      [['national_id', null, true]],
      'the expired whole-table grant must not come back with the new column grant',
    );
    await grant('WFP', 'ssc_insured', ['national_id'], {
      purpose: 'school feeding targeting',
      legalBasis: 'WFP agreement 2026/7',
      expires: '2027-01-31',
    });
    const [renewed] = await fetchGrants(ctx, { entity: 'WFP', table: 'ssc_insured' });
    assert.deepEqual(
      [renewed?.purpose, renewed?.legalBasis, renewed?.expiresAt],
      ['school feeding targeting', 'WFP agreement 2026/7', '2027-02-01T00:00:00.000Z'],
    );
  });

  it('columns left by a revoke from a whole-table grant keep its purpose, basis and expiry', async () => {
    await grant('ILO', 'ssc_insured', [], { expires: '2027-06-30' });
    await revoke('ILO', 'ssc_insured', ['monthly_salary']);
    assert.deepEqual(
      (await fetchGrants(ctx, { entity: 'ILO' })).map((g) => [
        g.column,
        g.purpose,
        g.legalBasis,
        g.expiresAt,
      ]),
      [
        ['employer_name', GRANT_TERMS.purpose, GRANT_TERMS.legalBasis, '2027-07-01T00:00:00.000Z'],
        ['national_id', GRANT_TERMS.purpose, GRANT_TERMS.legalBasis, '2027-07-01T00:00:00.000Z'],
      ],
    );
  });

  it('a grant from before purposes were recorded keeps counting and shows none', async () => {
    // What migration 006 leaves of an older grant: the row as it was, purpose, basis and expiry empty.
    await ctx.knex('hub_grants').insert({
      entity: 'UNDP',
      table_name: 'cspd_people',
      column_name: '',
      granted_by: 'before-006',
      granted_at: '2025-01-01T00:00:00.000Z',
    });
    await ctx.knex('hub_grants_version').where({ id: 1 }).increment('version', 1);
    assert.equal(
      (await fetchAbility(ctx, createAbilityCache(), 'UNDP')).can('read', 'cspd_people', 'full_name'),
      true,
    );
    const [old] = await fetchGrants(ctx, { entity: 'UNDP' });
    assert.deepEqual([old?.purpose, old?.legalBasis, old?.expiresAt, old?.active], [null, null, null, true]);
  });

  it('previewRevoke lists the saved queries and clients a revoke would break, and changes nothing', async () => {
    await grant('MOSD', 'cspd_people', []);
    await grant('MOSD', 'ssc_insured', []);
    const query = (name: string, extra: Record<string, unknown>) =>
      saveQuery(
        ctx,
        { name, entity: 'MOSD', tables: ['cspd_people'], columns: ['cspd_people.national_id'], ...extra },
        operator.name,
      );
    await query('selects-gender', { columns: ['cspd_people.national_id', 'cspd_people.gender'] });
    await query('filters-on-gender', { conditions: [{ column: 'cspd_people.gender', op: '=', value: 'F' }] });
    await query('sorts-on-gender', { order_by: [{ column: 'cspd_people.gender', direction: 'desc' }] });
    await query('names-only', { columns: ['cspd_people.national_id', 'cspd_people.full_name'] });
    await query('joins-insured', { tables: ['cspd_people', 'ssc_insured'] });
    const client = await createClient(ctx, { entity: 'MOSD', name: 'MOSD case management' }, operator.name);
    const disabled = await createClient(ctx, { entity: 'MOSD', name: 'old MIS' }, operator.name);
    await ctx.knex('hub_clients').where({ client_id: disabled.client_id }).update({ status: 'disabled' });
    await createClient(ctx, { entity: 'ILO', name: 'another entity' }, operator.name);

    const before = await snapshot();
    const columns = await preview('MOSD', 'cspd_people', ['gender']);
    assert.deepEqual(columns.after, {
      wholeTable: false,
      columns: ['national_id', 'full_name', 'birth_date'],
    });
    assert.deepEqual(columns.queries, [
      { name: 'filters-on-gender', denied: ['cspd_people.gender'] },
      { name: 'selects-gender', denied: ['cspd_people.gender'] },
      { name: 'sorts-on-gender', denied: ['cspd_people.gender'] },
    ]);
    assert.deepEqual(columns.clients, [{ client_id: client.client_id, name: 'MOSD case management' }]);

    const table = await preview('MOSD', 'ssc_insured', []);
    assert.deepEqual(
      table.queries,
      [{ name: 'joins-insured', denied: ['ssc_insured'] }],
      'a joined table breaks the query though none of its columns is named',
    );

    const nothing = await preview('MOSD', 'ssc_insured', ['monthly_salary']);
    assert.deepEqual(nothing.queries, []);
    assert.equal(nothing.clients.length, 1, 'person lookups of the client still lose the column');

    const ungranted = await preview('NOBODY', 'ssc_insured', []);
    assert.deepEqual([ungranted.queries, ungranted.clients], [[], []]);

    await assert.rejects(preview('MOSD', 'ssc_nothing', []), isHubError('unknown_table', 404));
    await assert.rejects(preview('MOSD', 'cspd_people', ['salary']), isHubError('unknown_column', 400));
    await assert.rejects(
      preview('MOSD', 'cspd_people', [], { actor: nafAdmin }),
      isHubError('forbidden', 403),
    );
    assert.deepEqual(await snapshot(), before);

    // And the preview said true: the revoke breaks exactly those queries.
    await revoke('MOSD', 'cspd_people', ['gender']);
    const after = await fetchAbility(ctx, createAbilityCache(), 'MOSD');
    assert.equal(after.can('read', 'cspd_people', 'gender'), false);
  });
});
