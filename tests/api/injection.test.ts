import assert from 'node:assert/strict';
import { TOKEN_FAILURE_WINDOW_MS } from '../../server/services/token-throttle.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import {
  assertApiError,
  assertOAuthError,
  fetchWarehouseFingerprint,
  PERSON,
  saveQueryAsSuperAdmin,
  startApiHub,
  type ApiHub,
  type TableFingerprint,
} from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';

const SQL_ATTACKS = [
  "x' OR '1'='1",
  "'); DROP TABLE reg_people;--",
  '1; DROP TABLE reg_people',
  "' UNION SELECT national_id, full_name FROM reg_people --",
  '" OR ""="',
  'a\u0000b',
  '%',
  '\\',
];

/** The RFC 6749 §5.2 errors a bad token request may get, by status. */
const TOKEN_ERRORS: Record<number, string[]> = {
  400: ['invalid_request', 'unsupported_grant_type'],
  401: ['invalid_client'],
};

/** Form encoding of a request; an array becomes a repeated field. */
function buildForm(request: Record<string, unknown>): string {
  const form = new URLSearchParams();
  for (const [name, value] of Object.entries(request)) {
    for (const item of Array.isArray(value) ? value : [value])
      form.append(name, typeof item === 'string' ? item : JSON.stringify(item));
  }
  return form.toString();
}

/** A definition that saves and runs; each injection case changes one part of it. */
const goodDefinition = () => ({
  name: 'inj-base',
  entity: 'INJ',
  tables: ['reg_people'],
  columns: ['reg_people.national_id', 'reg_people.full_name'],
  conditions: [{ column: 'reg_people.gender', op: '=', value: 'F' }],
});

describeEachDatabase('Consumer API: injection attempts change nothing', (db) => {
  let hub: ApiHub;
  let token: string;
  let baseline: Record<string, TableFingerprint>;

  const assertUnchanged = async (what: string) => {
    assert.deepEqual(
      await fetchWarehouseFingerprint(hub.ctx),
      baseline,
      `the warehouse changed after ${what}`,
    );
  };

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('INJ', 'reg_people');
    await hub.grant('INJ', 'veh_vehicles');
    await saveQueryAsSuperAdmin(hub, {
      name: 'inj-by-name',
      entity: 'INJ',
      tables: ['reg_people'],
      columns: ['reg_people.national_id', 'reg_people.full_name'],
      conditions: [
        { column: 'reg_people.full_name', op: '=', param: 'name' },
        { column: 'reg_people.full_name', op: 'like', param: 'pattern' },
        { column: 'reg_people.full_name', op: 'starts_with', param: 'prefix' },
      ],
      params: { name: { type: 'string' }, pattern: { type: 'string' }, prefix: { type: 'string' } },
    });
    await saveQueryAsSuperAdmin(hub, {
      name: 'inj-born-before',
      entity: 'INJ',
      tables: ['reg_people', 'veh_vehicles'],
      columns: ['reg_people.national_id', 'veh_vehicles.registration_number'],
      conditions: [
        { column: 'reg_people.birth_date', op: '<=', param: 'born_before' },
        { column: 'veh_vehicles.model_year', op: '>=', param: 'from_year' },
      ],
      params: { born_before: { type: 'date', required: true }, from_year: { type: 'integer' } },
    });
    token = (await hub.createCaller('INJ', { ratePerMinute: 10_000 })).token;
    baseline = await fetchWarehouseFingerprint(hub.ctx);
  });

  after(async () => {
    await hub?.close();
  });

  it('answers injection in the national ID path with 400, also URL-encoded', async () => {
    const paths = [
      ...SQL_ATTACKS.map((attack) => encodeURIComponent(attack)),
      "1' OR '1'='1",
      '%27%20OR%20%271%27%3D%271',
      '1%27%3B%20DROP%20TABLE%20reg_people%3B--',
      `${PERSON.sara}'--`,
      `${PERSON.sara}%20OR%201=1`,
      `${PERSON.sara.slice(0, 9)}%00`,
      '１２３４５６７８９０',
      '%E0%A4%A',
      '%',
      '..%2F..%2Fhub_clients',
    ];
    for (const path of paths) {
      const res = await hub.call('GET', `/api/v1/persons/${path}`, { token });
      assertApiError(res, 400, 'invalid_request');
      await assertUnchanged(`GET /api/v1/persons/${path}`);
    }
  });

  it('binds string parameters as values: an injection matches no row and drops nothing', async () => {
    for (const attack of SQL_ATTACKS) {
      for (const param of ['name', 'pattern', 'prefix']) {
        const res = await hub.call('POST', '/api/v1/queries/inj-by-name', {
          token,
          json: { params: { [param]: attack } },
        });
        if (res.status === 200) {
          const rows = (res.body as { rows: unknown[] }).rows;
          // Only the like pattern "%" is a wildcard by design; everything else is a literal that matches nobody.
          assert.equal(
            rows.length,
            param === 'pattern' && attack === '%' ? 6 : 0,
            `${param}=${JSON.stringify(attack)}: ${res.text}`,
          );
        } else {
          assertApiError(res, 400, 'invalid_parameter', new RegExp(`params\\.${param}`));
        }
        await assertUnchanged(`params.${param} = ${JSON.stringify(attack)}`);
      }
    }
    // The controls: the same query finds a real name, literally.
    const found = await hub.call('POST', '/api/v1/queries/inj-by-name', {
      token,
      json: { params: { prefix: 'سارة' } },
    });
    assert.equal((found.body as { rows: unknown[] }).rows.length, 1, found.text);
  });

  it('answers injection in typed parameters with 400 invalid_parameter', async () => {
    for (const attack of SQL_ATTACKS) {
      assertApiError(
        await hub.call('POST', '/api/v1/queries/inj-born-before', {
          token,
          json: { params: { born_before: attack } },
        }),
        400,
        'invalid_parameter',
        /params\.born_before/,
      );
      assertApiError(
        await hub.call('POST', '/api/v1/queries/inj-born-before', {
          token,
          json: { params: { born_before: '2000-01-01', from_year: attack } },
        }),
        400,
        'invalid_parameter',
        /params\.from_year/,
      );
      assertApiError(
        await hub.call('POST', '/api/v1/queries/inj-born-before', {
          token,
          json: { params: { born_before: '2000-01-01', [attack]: 1 } },
        }),
        400,
        'invalid_parameter',
        /unknown parameter/,
      );
    }
    await assertUnchanged('typed parameter injections');
  });

  it('answers injection in the query name and the request body with 4xx JSON errors', async () => {
    for (const attack of SQL_ATTACKS) {
      assertApiError(
        await hub.call('POST', `/api/v1/queries/${encodeURIComponent(attack)}`, { token, json: {} }),
        404,
        'not_found',
      );
    }
    assertApiError(
      await hub.call('POST', '/api/v1/queries/inj-by-name', {
        token,
        json: { page: '1; DROP TABLE reg_people' },
      }),
      400,
      'invalid_request',
      /page/,
    );
    assertApiError(
      await hub.call('POST', '/api/v1/queries/inj-by-name', { token, json: { params: "name' OR 1=1" } }),
      400,
      'invalid_request',
      /params/,
    );
    assertApiError(
      await hub.call('POST', '/api/v1/queries/inj-by-name', {
        token,
        raw: "{'params': {'name': 1}}",
        headers: { 'content-type': 'application/json' },
      }),
      400,
      'invalid_request',
      /JSON/,
    );
    await assertUnchanged('query name and body injections');
  });

  it('refuses saved-query definitions with injected identifiers or operators, saving nothing', async () => {
    const base = goodDefinition();
    const attacks: Array<[string, Record<string, unknown>]> = [
      ['quoted column', { columns: ["reg_people.full_name' --"] }],
      ['column with a space', { columns: ['reg_people.full name'] }],
      ['star column', { columns: ['reg_people.*'] }],
      ['bare star', { columns: ['*'] }],
      ['column with SQL', { columns: ['reg_people.national_id, (SELECT secret_hash FROM hub_clients)'] }],
      ['upper-case column', { columns: ['reg_people.NATIONAL_ID'] }],
      ['quoted identifier', { columns: ['"reg_people"."full_name"'] }],
      ['table with a statement', { tables: ['reg_people; drop table reg_people'] }],
      ['table with a comment', { tables: ['reg_people--'] }],
      ['hub table', { tables: ['hub_clients'], columns: ['hub_clients.secret_hash'] }],
      ['column of a table the query does not name', { columns: ['veh_vehicles.registration_number'] }],
      ['operator with SQL', { conditions: [{ column: 'reg_people.gender', op: '= 1 OR 1=1', value: 'F' }] }],
      ['operator OR', { conditions: [{ column: 'reg_people.gender', op: 'OR', value: '1=1' }] }],
      [
        'condition column with SQL',
        { conditions: [{ column: "reg_people.gender = 'F' OR 1", op: '=', value: 'F' }] },
      ],
      ['raw SQL field', { conditions: [{ column: 'reg_people.gender', op: '=', value: 'F', raw: '1=1' }] }],
      [
        'order by with SQL',
        { order_by: [{ column: 'reg_people.full_name; DROP TABLE reg_people', direction: 'asc' }] },
      ],
      [
        'order direction with SQL',
        { order_by: [{ column: 'reg_people.full_name', direction: 'asc; DROP TABLE reg_people' }] },
      ],
      [
        'param name with SQL',
        {
          conditions: [{ column: 'reg_people.gender', op: '=', param: "g' OR 1=1" }],
          params: { "g' OR 1=1": { type: 'string' } },
        },
      ],
      ['query name with SQL', { name: "inj'; DROP TABLE hub_queries;--" }],
      ['entity with SQL', { entity: "INJ' OR '1'='1" }],
      ['limit with SQL', { limit: '10; DROP TABLE reg_people' }],
      [
        'value of the wrong type',
        { conditions: [{ column: 'reg_people.birth_date', op: '<=', value: "1990-01-01' OR '1'='1" }] },
      ],
      ['value with NUL', { conditions: [{ column: 'reg_people.full_name', op: '=', value: 'a\u0000b' }] }],
    ];
    for (const [what, change] of attacks) {
      await assert.rejects(
        () =>
          saveQueryAsSuperAdmin(hub, { ...base, name: `inj-${what.replace(/[^a-z]+/g, '-')}`, ...change }),
        (err: unknown) => {
          assert.ok(err instanceof HubError, `${what}: expected a HubError, got ${String(err)}`);
          assert.ok(err.status >= 400 && err.status < 500, `${what}: status ${err.status}`);
          assert.match(
            err.code,
            /^(invalid_request|invalid_operator|invalid_parameter|unknown_table|unknown_column|column_not_granted)$/,
            what,
          );
          return true;
        },
        what,
      );
      await assertUnchanged(`saving a definition with ${what}`);
    }
    // The control: the unchanged definition saves.
    await saveQueryAsSuperAdmin(hub, base);
    const saved = await hub.ctx
      .knex('hub_queries')
      .where({ name: 'inj-base' })
      .first<{ entity: string }>('entity');
    assert.equal(saved.entity, 'INJ');
    await hub.ctx.knex('hub_queries').where({ name: 'inj-base' }).delete();
  });

  it('answers injection in the token request with 400 or 401 JSON errors', async () => {
    const credentials = await hub.createClient('INJ');
    baseline = await fetchWarehouseFingerprint(hub.ctx);
    const requests: Array<Record<string, unknown>> = [
      ...SQL_ATTACKS.map((attack) => ({
        grant_type: 'client_credentials',
        client_id: attack,
        client_secret: credentials.client_secret,
      })),
      ...SQL_ATTACKS.map((attack) => ({
        grant_type: 'client_credentials',
        client_id: credentials.client_id,
        client_secret: attack,
      })),
      { grant_type: "client_credentials' OR '1'='1", ...credentials },
      {
        grant_type: 'client_credentials',
        client_id: `${credentials.client_id}' OR '1'='1`,
        client_secret: "' OR '1'='1",
      },
      { grant_type: 'client_credentials', client_id: { $ne: null }, client_secret: { $ne: null } },
      {
        grant_type: 'client_credentials',
        client_id: [credentials.client_id, "x' OR '1'='1"],
        client_secret: credentials.client_secret,
      },
    ];
    for (const request of requests) {
      // Each request in a throttle window of its own: the answer is to the request, not a 429.
      hub.clock.advance(TOKEN_FAILURE_WINDOW_MS);
      for (const res of [
        await hub.call('POST', '/api/v1/token', { json: request }),
        await hub.call('POST', '/api/v1/token', {
          raw: buildForm(request),
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
        }),
      ]) {
        assert.ok([400, 401].includes(res.status), `${JSON.stringify(request)}: ${res.status} ${res.text}`);
        const error = String((res.body as { error?: unknown }).error);
        assert.ok(
          TOKEN_ERRORS[res.status]?.includes(error),
          `${JSON.stringify(request)}: ${res.status} ${res.text}`,
        );
        assertOAuthError(res, res.status, error);
      }
      await assertUnchanged(`token request ${JSON.stringify(request)}`);
    }
  });
});
