import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { createAbilityCache, fetchAbility, fetchGrantsVersion } from '../../../privileges/ability-cache.ts';
import type { Actor } from '../../../privileges/actor.ts';
import { authorizeRead } from '../../../privileges/authorize-query.ts';
import {
  fetchGrants,
  grantAccess,
  revokeAccess,
  type AccessInput,
  type GrantInput,
} from '../../../privileges/grants.ts';
import { permittedColumns } from '../../../privileges/permitted-columns.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { fetchCatalog, type CatalogTable } from '../../../warehouse/catalog.ts';
import { HubError } from '../../../warehouse/core/errors.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { createManualClock, GRANT_TERMS, openTestContext } from '../../support/hub-context.ts';
import { isHubError } from '../../support/hub-errors.ts';
import { writeGrantRegistries } from '../../support/registry-fixture.ts';
import { countAuditRows } from '../../support/audit-rows.ts';

const operator: Actor = { name: 'test-operator', role: 'super-admin', entity: null };
const sscCustodian: Actor = { name: 'ssc-custodian', role: 'custodian', entity: 'SSC' };
const cspdCustodian: Actor = { name: 'cspd-custodian', role: 'custodian', entity: 'CSPD' };
const nafAdmin: Actor = { name: 'naf-admin', role: 'entity-admin', entity: 'NAF' };

const INSURED_COLUMNS = ['national_id', 'employer_name', 'monthly_salary', 'start_date'];

describeEachDatabase('privileges: grants, revokes and cached abilities', (db) => {
  let dir: string;
  let ctx: AppContext;
  let other: AppContext;
  const clock = createManualClock('2026-04-01T08:00:00.000Z');

  const catalogTable = async (name: string): Promise<CatalogTable> => {
    const table = (await fetchCatalog(ctx.knex)).find((t) => t.name === name);
    assert.ok(table, `${name} is not in the catalog`);
    return table;
  };
  const readable = async (entity: string, table: string, from: AppContext = ctx) =>
    permittedColumns(await fetchAbility(from, createAbilityCache(), entity), await catalogTable(table));
  const snapshot = async () => ({
    grants: await ctx.knex('hub_grants').orderBy(['entity', 'table_name', 'column_name']).select('*'),
    version: await fetchGrantsVersion(ctx.knex),
    audit: await countAuditRows(ctx.knex),
    entities: await ctx.knex('hub_entities').orderBy('code').pluck<string[]>('code'),
  });
  // Most changes here are the operator's on the usual terms; a test passes only what differs.
  const grant = (consumer: string, table: string, columns: string[], overrides: Partial<GrantInput> = {}) =>
    grantAccess(ctx, { ...GRANT_TERMS, consumer, table, columns, actor: operator, ...overrides });
  const revoke = (consumer: string, table: string, columns: string[], overrides: Partial<AccessInput> = {}) =>
    revokeAccess(ctx, { consumer, table, columns, actor: operator, ...overrides });

  before(async () => {
    dir = await createTempDir('hub-privileges-');
    // Two contexts with their own pools and caches behave like two hub processes on one warehouse.
    ctx = openTestContext(db.url(), dir, { clock });
    other = openTestContext(db.url(), dir);
    await writeGrantRegistries(ctx.config.connectorsDir, INSURED_COLUMNS);
    await prepareWarehouse(ctx);
  });

  after(async () => {
    await closeContext(ctx);
    await closeContext(other);
    await rm(dir, { recursive: true, force: true });
  });

  it('a whole-table grant permits every catalog column, a column grant only its columns', async () => {
    await grant('NAF', 'ssc_insured', []);
    await grant('NAF', 'cspd_people', ['gender', 'national_id']);
    assert.deepEqual(await readable('NAF', 'ssc_insured'), INSURED_COLUMNS);
    assert.deepEqual(await readable('NAF', 'cspd_people'), ['national_id', 'gender']);
    assert.deepEqual(await readable('NOBODY', 'ssc_insured'), []);
  });

  it('an entity reads its own tables without a grant, and cannot be granted them', async () => {
    assert.deepEqual(await readable('SSC', 'ssc_insured'), INSURED_COLUMNS);
    assert.deepEqual(await readable('SSC', 'cspd_people'), []);
    const before = await snapshot();
    await assert.rejects(
      grant('SSC', 'ssc_insured', []),
      isHubError('invalid_request', 400, /SSC owns ssc_insured/),
    );
    assert.deepEqual(await snapshot(), before);
  });

  it('creates a consuming entity on its first grant, labelled with its code', async () => {
    await grant('WFP_2', 'ssc_insured', ['national_id'], { actor: sscCustodian });
    const entity = await ctx
      .knex('hub_entities')
      .where({ code: 'WFP_2' })
      .first<{ label_en: string; label_ar: string }>('label_en', 'label_ar');
    assert.deepEqual(entity, { label_en: 'WFP_2', label_ar: 'WFP_2' });
  });

  it('lets a custodian grant its own tables only, and an entity admin none; a refusal writes nothing', async () => {
    const change = await grant('MOSD', 'ssc_insured', ['monthly_salary'], { actor: sscCustodian });
    assert.deepEqual(change.after, { wholeTable: false, columns: ['monthly_salary'] });
    const before = await snapshot();
    await assert.rejects(
      grant('MOSD', 'ssc_insured', [], { actor: cspdCustodian }),
      isHubError('forbidden', 403, /cspd-custodian may not .* ssc_insured, a table of SSC/),
    );
    await assert.rejects(
      revoke('MOSD', 'ssc_insured', [], { actor: cspdCustodian }),
      isHubError('forbidden', 403),
    );
    await assert.rejects(
      grant('MOSD', 'cspd_people', [], { actor: nafAdmin }),
      isHubError('forbidden', 403, /naf-admin may not grant or revoke/),
    );
    await assert.rejects(
      grant('MOSD', 'cspd_people', [], { actor: { ...sscCustodian, entity: null } }),
      isHubError('forbidden', 403),
    );
    assert.deepEqual(await snapshot(), before);
  });

  it('names an unknown table, every unknown column and a bad entity code, and writes nothing', async () => {
    const before = await snapshot();
    await assert.rejects(
      grant('UNICEF', 'ssc_missing', []),
      isHubError('unknown_table', 404, /unknown table "ssc_missing"/),
    );
    await assert.rejects(
      grant('UNICEF', 'ssc_insured', ['national_id', 'salary', 'employer']),
      (err: unknown) => {
        isHubError('unknown_column', 400, /ssc_insured has no column "salary", "employer"/)(err);
        assert.deepEqual((err as HubError).details, {
          table: 'ssc_insured',
          unknown: ['salary', 'employer'],
        });
        return true;
      },
    );
    await assert.rejects(
      revoke('UNICEF', 'ssc_insured', ['salary']),
      isHubError('unknown_column', 400, /"salary"/),
    );
    for (const consumer of ['unicef', 'UN-ICEF', '9UNICEF', '', 'A'.repeat(17)]) {
      await assert.rejects(
        grant(consumer, 'ssc_insured', []),
        isHubError('invalid_request', 400, /entity code .* must match/),
      );
    }
    assert.deepEqual(await snapshot(), before);
  });

  it('granting the whole table replaces column grants; granting columns under it changes nothing', async () => {
    await grant('ILO', 'ssc_insured', ['start_date']);
    const whole = await grant('ILO', 'ssc_insured', []);
    assert.deepEqual(
      [whole.before, whole.after],
      [
        { wholeTable: false, columns: ['start_date'] },
        { wholeTable: true, columns: [] },
      ],
    );
    const again = await grant('ILO', 'ssc_insured', ['national_id']);
    assert.deepEqual(again.after, { wholeTable: true, columns: [] });
    const grants = await fetchGrants(ctx, { entity: 'ILO' });
    assert.deepEqual(
      grants.map((g) => [g.table, g.column]),
      [['ssc_insured', null]],
    );
  });

  it('revoking columns of a whole-table grant keeps the other catalog columns; revoking the table removes all', async () => {
    await grant('FAO', 'ssc_insured', []);
    const some = await revoke('FAO', 'ssc_insured', ['monthly_salary', 'employer_name']);
    assert.deepEqual(some.after, { wholeTable: false, columns: ['national_id', 'start_date'] });
    assert.deepEqual(await readable('FAO', 'ssc_insured'), ['national_id', 'start_date']);
    const rows = await fetchGrants(ctx, { entity: 'FAO', table: 'ssc_insured' });
    assert.deepEqual(
      rows.map((g) => g.column),
      ['national_id', 'start_date'],
    );

    const one = await revoke('FAO', 'ssc_insured', ['start_date']);
    assert.deepEqual(one.after, { wholeTable: false, columns: ['national_id'] });
    const all = await revoke('FAO', 'ssc_insured', []);
    assert.deepEqual(
      [all.before, all.after],
      [
        { wholeTable: false, columns: ['national_id'] },
        { wholeTable: false, columns: [] },
      ],
    );
    assert.deepEqual(await readable('FAO', 'ssc_insured'), []);
    assert.deepEqual(await fetchGrants(ctx, { entity: 'FAO' }), []);

    const nobody = await revoke('GHOST', 'ssc_insured', []);
    assert.deepEqual(
      [nobody.before, nobody.after],
      [
        { wholeTable: false, columns: [] },
        { wholeTable: false, columns: [] },
      ],
    );
    assert.equal(await ctx.knex('hub_entities').where({ code: 'GHOST' }).first('code'), undefined);
  });

  it('authorizeRead on a fetched ability names every denied table and column in one 403', async () => {
    await grant('WB', 'ssc_insured', ['national_id', 'monthly_salary']);
    const ability = await fetchAbility(ctx, createAbilityCache(), 'WB');
    authorizeRead(ability, {
      tables: ['ssc_insured'],
      columns: [{ table: 'ssc_insured', column: 'monthly_salary' }],
    });
    assert.throws(
      () =>
        authorizeRead(ability, {
          tables: ['ssc_insured', 'cspd_people'],
          columns: [
            { table: 'ssc_insured', column: 'national_id' },
            { table: 'ssc_insured', column: 'start_date' },
            { table: 'cspd_people', column: 'full_name' },
            { table: 'ssc_insured', column: 'employer_name' },
          ],
        }),
      (err: unknown) => {
        isHubError('table_not_granted', 403)(err);
        assert.deepEqual((err as HubError).details, {
          denied: ['cspd_people', 'ssc_insured.employer_name', 'ssc_insured.start_date'],
          tables: ['cspd_people'],
          columns: ['ssc_insured.employer_name', 'ssc_insured.start_date'],
        });
        return true;
      },
    );
  });

  it('bumps the grants version; another process sees a revoke on its very next request', async () => {
    const otherCache = createAbilityCache();
    // The other process's next request: the API starts each with a fresh read snapshot (app.ts).
    const nextRequest = () => {
      other.reads.endSnapshot();
      return fetchAbility(other, otherCache, 'UNHCR');
    };
    const start = await fetchGrantsVersion(ctx.knex);
    const granted = await grant('UNHCR', 'cspd_people', []);
    assert.equal(granted.version, start + 1);

    const seen = await nextRequest();
    assert.equal(seen.can('read', 'cspd_people', 'full_name'), true);
    assert.equal(await nextRequest(), seen, 'an unchanged version must reuse the cached ability');

    const revoked = await revoke('UNHCR', 'cspd_people', ['full_name']);
    assert.equal(revoked.version, start + 2);
    const next = await nextRequest();
    assert.equal(next.can('read', 'cspd_people', 'full_name'), false);
    assert.equal(next.can('read', 'cspd_people', 'gender'), true);

    await revoke('UNHCR', 'cspd_people', []);
    assert.equal((await nextRequest()).can('read', 'cspd_people'), false);
    assert.equal(await fetchGrantsVersion(other.knex), start + 3);
  });

  it('grants made at once lose nothing and each get their own version', async () => {
    // better-sqlite3 waits for a lock synchronously, so two SQLite connections in one process
    // would block each other's commit; a SQLite hub writes through one connection per process.
    const writers = db.name === 'sqlite' ? [ctx] : [ctx, other];
    const start = await fetchGrantsVersion(ctx.knex);
    const changes = await Promise.all(
      INSURED_COLUMNS.map((column, i) =>
        grantAccess(writers[i % writers.length]!, {
          ...GRANT_TERMS,
          consumer: 'ESCWA',
          table: 'ssc_insured',
          columns: [column],
          actor: operator,
        }),
      ),
    );
    assert.deepEqual(
      changes.map((c) => c.version).sort((a, b) => a - b),
      INSURED_COLUMNS.map((_, i) => start + i + 1),
    );
    assert.deepEqual(await readable('ESCWA', 'ssc_insured'), INSURED_COLUMNS);
  });

  it('audits every grant and revoke with the actor, the consumer, the table and the columns', async () => {
    await grant('IOM', 'ssc_insured', ['start_date', 'national_id'], { actor: sscCustodian });
    await revoke('IOM', 'ssc_insured', []);
    const events = await ctx
      .knex('hub_audit')
      .where({ entity: 'IOM' })
      .orderBy('id')
      .select<Array<{ actor: string; action: string; target: string; details: string }>>(
        'actor',
        'action',
        'target',
        'details',
      );
    assert.deepEqual(
      events.map((e) => [e.actor, e.action, e.target, JSON.parse(e.details) as unknown]),
      [
        [
          'ssc-custodian',
          'grant',
          'ssc_insured',
          {
            columns: ['national_id', 'start_date'],
            purpose: GRANT_TERMS.purpose,
            legal_basis: GRANT_TERMS.legalBasis,
            expires_at: null,
          },
        ],
        ['test-operator', 'revoke', 'ssc_insured', { columns: [] }],
      ],
    );
  });

  it('lists grants with who granted them and when, why, on what basis and until when', async () => {
    clock.advance(60_000);
    await grant('UNDP', 'cspd_people', ['birth_date', 'national_id'], { actor: cspdCustodian });
    await grant('UNDP', 'ssc_insured', []);
    assert.deepEqual(await fetchGrants(ctx, { entity: 'UNDP' }), [
      {
        entity: 'UNDP',
        table: 'cspd_people',
        column: 'birth_date',
        grantedBy: 'cspd-custodian',
        grantedAt: '2026-04-01T08:01:00.000Z',
        purpose: GRANT_TERMS.purpose,
        legalBasis: GRANT_TERMS.legalBasis,
        expiresAt: null,
        active: true,
      },
      {
        entity: 'UNDP',
        table: 'cspd_people',
        column: 'national_id',
        grantedBy: 'cspd-custodian',
        grantedAt: '2026-04-01T08:01:00.000Z',
        purpose: GRANT_TERMS.purpose,
        legalBasis: GRANT_TERMS.legalBasis,
        expiresAt: null,
        active: true,
      },
      {
        entity: 'UNDP',
        table: 'ssc_insured',
        column: null,
        grantedBy: 'test-operator',
        grantedAt: '2026-04-01T08:01:00.000Z',
        purpose: GRANT_TERMS.purpose,
        legalBasis: GRANT_TERMS.legalBasis,
        expiresAt: null,
        active: true,
      },
    ]);
    const onTable = await fetchGrants(ctx, { table: 'cspd_people' });
    assert.ok(onTable.every((g) => g.table === 'cspd_people'));
    assert.ok(onTable.some((g) => g.entity === 'NAF'));
  });
});
