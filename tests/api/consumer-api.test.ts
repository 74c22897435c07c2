import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { SignJWT } from 'jose';
import { revokeAccess, grantAccess } from '../../privileges/grants.ts';
import { closeContext } from '../../server/context.ts';
import { disableClient, rotateClientSecret } from '../../server/services/client-service.ts';
import type { QueryRunResult } from '../../server/services/query-service.ts';
import { TOKEN_KEY_PURPOSE } from '../../server/services/token-service.ts';
import {
  assertApiError,
  assertOAuthError,
  fetchWarehouseFingerprint,
  PERSON,
  REGISTRY_TABLES,
  saveQueryAsSuperAdmin,
  startApiHub,
  superAdmin,
  UNKNOWN_PERSON,
  type ApiHub,
  type ApiResponse,
  type CallOptions,
  describePersonColumns,
} from '../support/api-hub.ts';
import { fetchAuditEvents } from '../support/audit-rows.ts';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { GRANT_TERMS, openTestContext } from '../support/hub-context.ts';
import { badCheckDigitId } from '../support/registry-fixture.ts';
import { isHubError } from '../support/hub-errors.ts';

interface PersonBody {
  national_id: string;
  tables: Record<string, Array<Record<string, unknown>>>;
}

interface OpenApiBody {
  openapi: string;
  paths: Record<string, unknown>;
}

const MINUTE = 60_000;
const DAY = 86_400_000;

const byRegistration = (a: Record<string, unknown>, b: Record<string, unknown>) =>
  String(a.registration_number).localeCompare(String(b.registration_number));

describeEachDatabase('Consumer API: tokens, persons, saved queries, rate limits', (db) => {
  let hub: ApiHub;

  const person = (token: string, id: string) => hub.call('GET', `/api/v1/persons/${id}`, { token });
  const runQuery = (token: string, name: string, body: unknown = {}) =>
    hub.call('POST', `/api/v1/queries/${name}`, { token, json: body });
  const personBody = (res: ApiResponse): PersonBody => {
    assert.equal(res.status, 200, res.text);
    return res.body as PersonBody;
  };
  const runBody = (res: ApiResponse): QueryRunResult => {
    assert.equal(res.status, 200, res.text);
    return res.body as QueryRunResult;
  };

  before(async () => {
    hub = await startApiHub(db.url());
    // NAF: some columns of the people table, the whole households table, nothing of vehicles.
    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name', 'gender']);
    await hub.grant('NAF', 'reg_households');
    // PAY runs saved queries; MOH owns a query PAY must not see.
    await hub.grant('PAY', 'reg_people');
    await hub.grant('PAY', 'veh_vehicles');
    await hub.grant('MOH', 'reg_people');
    await saveQueryAsSuperAdmin(hub, {
      name: 'pay-widows-born-before',
      entity: 'PAY',
      description: 'Widows born before a date',
      tables: ['reg_people'],
      columns: ['reg_people.national_id', 'reg_people.full_name', 'reg_people.birth_date'],
      conditions: [
        { column: 'reg_people.marital_status', op: '=', value: 'W' },
        { column: 'reg_people.birth_date', op: '<=', param: 'born_before' },
      ],
      params: { born_before: { type: 'date', required: true } },
    });
    await saveQueryAsSuperAdmin(hub, {
      name: 'pay-people',
      entity: 'PAY',
      description: 'Everyone, optionally of one gender',
      tables: ['reg_people'],
      columns: ['reg_people.national_id', 'reg_people.full_name'],
      conditions: [{ column: 'reg_people.gender', op: '=', param: 'gender' }],
      params: { gender: { type: 'string', required: false } },
    });
    await saveQueryAsSuperAdmin(hub, {
      name: 'pay-vehicle-owners',
      entity: 'PAY',
      description: 'Owners and their vehicles',
      tables: ['reg_people', 'veh_vehicles'],
      columns: ['reg_people.full_name', 'veh_vehicles.registration_number', 'veh_vehicles.vehicle_type'],
      conditions: [{ column: 'veh_vehicles.model_year', op: '>=', param: 'from_year' }],
      params: { from_year: { type: 'integer' } },
    });
    await saveQueryAsSuperAdmin(hub, {
      name: 'moh-people',
      entity: 'MOH',
      tables: ['reg_people'],
      columns: ['reg_people.national_id'],
    });
  });

  after(async () => {
    await hub?.close();
  });

  describe('POST /api/v1/token', () => {
    it('issues a bearer token for JSON and for form-encoded credentials', async () => {
      const credentials = await hub.createClient('NAF');
      for (const res of [
        await hub.call('POST', '/api/v1/token', {
          json: { grant_type: 'client_credentials', ...credentials },
        }),
        await hub.call('POST', '/api/v1/token', {
          form: { grant_type: 'client_credentials', ...credentials },
        }),
      ]) {
        assert.equal(res.status, 200, res.text);
        const body = res.body as Record<string, unknown>;
        assert.deepEqual(Object.keys(body).sort(), ['access_token', 'expires_in', 'token_type']);
        assert.equal(body.token_type, 'Bearer');
        assert.equal(body.expires_in, 900);
        assert.equal(res.headers.get('cache-control'), 'no-store');
        const listed = await hub.call('GET', '/api/v1/queries', { token: String(body.access_token) });
        assert.equal(listed.status, 200, listed.text);
      }
    });

    it('answers a wrong secret or an unknown client with 401 invalid_client, changing nothing', async () => {
      const credentials = await hub.createClient('NAF');
      const before = await fetchWarehouseFingerprint(hub.ctx);
      const wrongSecret = await hub.call('POST', '/api/v1/token', {
        json: {
          grant_type: 'client_credentials',
          client_id: credentials.client_id,
          client_secret: `${credentials.client_secret}x`,
        },
      });
      const unknown = await hub.call('POST', '/api/v1/token', {
        form: {
          grant_type: 'client_credentials',
          client_id: 'naf-00000000',
          client_secret: credentials.client_secret,
        },
      });
      // The same answer for both, so that client ids cannot be probed.
      assert.equal(
        assertOAuthError(wrongSecret, 401, 'invalid_client'),
        assertOAuthError(unknown, 401, 'invalid_client'),
      );
      assert.deepEqual(await fetchWarehouseFingerprint(hub.ctx), before);
      const refused = await fetchAuditEvents(hub.ctx.knex, {
        action: 'token.failed',
        actor: credentials.client_id,
      });
      assert.deepEqual(
        refused.map((r) => JSON.parse(r.details) as unknown),
        [{ ip: '127.0.0.1', error: 'invalid_client', status: 401, reason: 'bad_secret' }],
      );
    });

    it('answers missing credentials with 401 invalid_client, malformed fields with 400 invalid_request, another grant with unsupported_grant_type', async () => {
      const credentials = await hub.createClient('NAF');
      const before = await fetchWarehouseFingerprint(hub.ctx);
      const cases: Array<[CallOptions, number, string, RegExp]> = [
        [
          { json: { grant_type: 'client_credentials', client_id: credentials.client_id } },
          401,
          'invalid_client',
          /client_secret/,
        ],
        [
          { json: { grant_type: 'client_credentials', client_secret: credentials.client_secret } },
          401,
          'invalid_client',
          /client_id/,
        ],
        [{ json: { grant_type: 'client_credentials' } }, 401, 'invalid_client', /no client authentication/],
        [
          { form: { client_id: credentials.client_id, client_secret: credentials.client_secret } },
          400,
          'invalid_request',
          /grant_type/,
        ],
        [{ json: { grant_type: 'password', ...credentials } }, 400, 'unsupported_grant_type', /password/],
        [
          {
            form: {
              grant_type: 'client_credentials',
              client_id: '',
              client_secret: credentials.client_secret,
            },
          },
          400,
          'invalid_request',
          /client_id/,
        ],
        [
          {
            json: {
              grant_type: 'client_credentials',
              client_id: 42,
              client_secret: credentials.client_secret,
            },
          },
          400,
          'invalid_request',
          /client_id/,
        ],
        [
          { raw: 'grant_type=client_credentials', headers: { 'content-type': 'text/plain' } },
          400,
          'invalid_request',
          /grant_type/,
        ],
      ];
      for (const [options, status, error, field] of cases) {
        assertOAuthError(await hub.call('POST', '/api/v1/token', options), status, error, field);
      }
      assert.deepEqual(await fetchWarehouseFingerprint(hub.ctx), before);
    });

    it('answers a malformed JSON body with 400 invalid_request as JSON', async () => {
      const res = await hub.call('POST', '/api/v1/token', {
        raw: '{"grant_type": "client_credentials", "client_id": ',
        headers: { 'content-type': 'application/json' },
      });
      assertOAuthError(res, 400, 'invalid_request', /JSON/);
    });

    it('refuses a client allowed only another address with 403 address_not_allowed', async () => {
      const elsewhere = await hub.createClient('NAF', { allowedIps: ['10.9.9.9'] });
      const res = await hub.call('POST', '/api/v1/token', {
        json: { grant_type: 'client_credentials', ...elsewhere },
      });
      assertOAuthError(res, 403, 'address_not_allowed', /127\.0\.0\.1/);
      const here = await hub.createClient('NAF', { allowedIps: ['10.9.9.9', '127.0.0.1'] });
      const token = await hub.fetchToken(here);
      assert.equal((await hub.call('GET', '/api/v1/queries', { token })).status, 200);
      // Narrowing the list applies to tokens already issued, on their next request.
      await hub.ctx
        .knex('hub_clients')
        .where({ client_id: here.client_id })
        .update({ allowed_ips: JSON.stringify(['10.9.9.9']) });
      assertApiError(await hub.call('GET', '/api/v1/queries', { token }), 403, 'address_not_allowed');
    });
  });

  describe('bearer tokens', () => {
    it('expire 900 s after issue', async () => {
      const { token } = await hub.createCaller('NAF');
      hub.clock.advance(899_000);
      assert.equal((await person(token, PERSON.mohammad)).status, 200);
      hub.clock.advance(2_000);
      assertApiError(await person(token, PERSON.mohammad), 401, 'invalid_token', /expired/);
    });

    it('refuses a missing header, garbage, an unsigned token and tokens signed with another key or no key id', async () => {
      const { credentials } = await hub.createCaller('NAF');
      const nowSeconds = Math.floor(hub.clock.now().getTime() / 1000);
      const claims = { ent: 'NAF', iat_ms: hub.clock.now().getTime() };
      const currentKid = hub.ctx.keyring.currentKid();
      const sign = (key: Uint8Array, subject = credentials.client_id, kid: string | null = currentKid) =>
        new SignJWT(claims)
          .setProtectedHeader(kid === null ? { alg: 'HS256' } : { alg: 'HS256', kid })
          .setIssuer('registry-hub')
          .setSubject(subject)
          .setIssuedAt(nowSeconds)
          .setExpirationTime(nowSeconds + 900)
          .sign(key);
      const forged = await sign(randomBytes(32));
      const b64 = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64({ ...claims, iss: 'registry-hub', sub: credentials.client_id, iat: nowSeconds, exp: nowSeconds + 900 })}.`;
      const signingKey = hub.ctx.keyring.deriveSubkey(TOKEN_KEY_PURPOSE).key;
      const unknownClient = await sign(signingKey, 'naf-ffffffff');
      const noKid = await sign(signingKey, credentials.client_id, null);
      const unknownKid = await sign(signingKey, credentials.client_id, 'ffffffffffff');

      assertApiError(await hub.call('GET', '/api/v1/queries'), 401, 'invalid_token', /Bearer/);
      assertApiError(
        await hub.call('GET', '/api/v1/queries', { headers: { authorization: `Basic ${b64('a:b')}` } }),
        401,
        'invalid_token',
      );
      assertApiError(
        await person('not.a.token', PERSON.mohammad),
        401,
        'invalid_token',
        /signature or claims/,
      );
      assertApiError(await person(forged, PERSON.mohammad), 401, 'invalid_token', /signature or claims/);
      assertApiError(await person(unsigned, PERSON.mohammad), 401, 'invalid_token', /signature or claims/);
      assertApiError(
        await person(unknownClient, PERSON.mohammad),
        401,
        'invalid_token',
        /disabled or unknown/,
      );
      assertApiError(
        await person(noKid, PERSON.mohammad),
        401,
        'invalid_token',
        /key the hub no longer holds/,
      );
      assertApiError(
        await person(unknownKid, PERSON.mohammad),
        401,
        'invalid_token',
        /key the hub no longer holds/,
      );
    });

    it("a disabled client's token is refused on its next request", async () => {
      const { credentials, token } = await hub.createCaller('NAF');
      assert.equal((await person(token, PERSON.mohammad)).status, 200);
      await disableClient(hub.ctx, credentials.client_id, superAdmin.name);
      assertApiError(await person(token, PERSON.mohammad), 401, 'invalid_token', /disabled/);
      assertOAuthError(
        await hub.call('POST', '/api/v1/token', {
          json: { grant_type: 'client_credentials', ...credentials },
        }),
        401,
        'invalid_client',
      );
    });

    it('a rotated secret refuses the old secret and tokens issued before it on their next request', async () => {
      const { credentials, token } = await hub.createCaller('NAF');
      assert.equal((await person(token, PERSON.mohammad)).status, 200);
      hub.clock.advance(1_000);
      const rotated = await rotateClientSecret(hub.ctx, credentials.client_id, superAdmin.name);
      assertApiError(await person(token, PERSON.mohammad), 401, 'invalid_token', /rotated/);
      assertOAuthError(
        await hub.call('POST', '/api/v1/token', {
          json: { grant_type: 'client_credentials', ...credentials },
        }),
        401,
        'invalid_client',
      );
      const fresh = await hub.fetchToken(rotated);
      assert.equal((await person(fresh, PERSON.mohammad)).status, 200);
    });
  });

  describe('GET /api/v1/persons/{national_id}', () => {
    it('returns exactly the granted columns: a column grant and a whole-table grant', async () => {
      const { token } = await hub.createCaller('NAF');
      const body = personBody(await person(token, PERSON.mohammad));
      assert.deepEqual(body, {
        national_id: PERSON.mohammad,
        tables: {
          reg_people: [{ national_id: PERSON.mohammad, full_name: 'محمد أحمد العلي', gender: 'M' }],
          reg_households: [
            { national_id: PERSON.mohammad, household_id: 5001, region: 'عمان', household_size: 4 },
          ],
        },
      });
    });

    it("returns the entity's own tables whole, without grants", async () => {
      const { token } = await hub.createCaller('VEH');
      const body = personBody(await person(token, PERSON.mohammad));
      assert.deepEqual(Object.keys(body.tables), ['veh_vehicles']);
      assert.deepEqual([...(body.tables.veh_vehicles ?? [])].sort(byRegistration), [
        {
          national_id: PERSON.mohammad,
          registration_number: '10-1001',
          vehicle_type: 'سيارة',
          model_year: 2015,
          insured: true,
        },
        {
          national_id: PERSON.mohammad,
          registration_number: '10-1002',
          vehicle_type: 'شاحنة',
          model_year: 2008,
          insured: false,
        },
      ]);
    });

    it('lets no browser or proxy keep an answer, an error included, and gives no entity tag to ask again with', async () => {
      const { token } = await hub.createCaller('NAF');
      const answers = [
        await person(token, PERSON.mohammad),
        await person(token, UNKNOWN_PERSON),
        await hub.call('POST', '/api/v1/persons:batch', { token, json: { national_ids: [PERSON.mohammad] } }),
        await hub.call('GET', '/api/v1/queries', { token }),
        await hub.call('GET', `/api/v1/persons/${PERSON.mohammad}`),
      ];
      assert.deepEqual(
        answers.map((res) => [res.status, res.headers.get('cache-control'), res.headers.get('etag')]),
        [
          [200, 'no-store', null],
          [404, 'no-store', null],
          [200, 'no-store', null],
          [200, 'no-store', null],
          [401, 'no-store', null],
        ],
      );
    });

    it('answers 404 for a well-formed ID no registry holds and 400 for a malformed one', async () => {
      const { token } = await hub.createCaller('NAF');
      const before = await fetchWarehouseFingerprint(hub.ctx);
      assertApiError(await person(token, UNKNOWN_PERSON), 404, 'not_found', new RegExp(UNKNOWN_PERSON));
      assertApiError(await person(token, '12345'), 400, 'invalid_request', /national_id: .*10 digits/);
      assertApiError(await person(token, 'abcdefghij'), 400, 'invalid_request', /national_id: .*digits only/);
      assertApiError(
        await person(token, badCheckDigitId(11)),
        400,
        'invalid_request',
        /national_id: .*check digit/,
      );
      assert.deepEqual(await fetchWarehouseFingerprint(hub.ctx), before);
    });

    it('answers a person held only in tables the caller may not read exactly as an ID no registry holds', async () => {
      // NAF reads nothing of veh_vehicles, the one table that holds vehicleOnly.
      const { token } = await hub.createCaller('NAF');
      const unknown = await person(token, UNKNOWN_PERSON);
      const hidden = await person(token, PERSON.vehicleOnly);
      assertApiError(hidden, 404, 'not_found');
      assert.equal(hidden.text, unknown.text.replaceAll(UNKNOWN_PERSON, PERSON.vehicleOnly));
      assert.deepEqual(
        [...hidden.headers.keys()].sort(),
        [...unknown.headers.keys()].sort(),
        'the same headers as an unknown ID',
      );
    });

    it('a table whose national ID column is not granted takes no part in the lookup', async () => {
      await hub.grant('NIDLESS', 'veh_vehicles', ['vehicle_type']);
      const { token } = await hub.createCaller('NIDLESS');
      const unknown = await person(token, UNKNOWN_PERSON);
      for (const id of [PERSON.vehicleOnly, PERSON.sara]) {
        const res = await person(token, id);
        assertApiError(res, 404, 'not_found');
        assert.equal(res.text, unknown.text.replaceAll(UNKNOWN_PERSON, id));
      }
      await hub.grant('NIDLESS', 'veh_vehicles', ['national_id']);
      assert.deepEqual(personBody(await person(token, PERSON.vehicleOnly)).tables, {
        veh_vehicles: [{ national_id: PERSON.vehicleOnly, vehicle_type: 'دراجة' }],
      });
    });

    it('a revoke takes effect on the very next call', async () => {
      await hub.grant('REVOKE_NEXT', 'reg_people');
      const { token } = await hub.createCaller('REVOKE_NEXT');
      const columnsOf = async () =>
        Object.keys(personBody(await person(token, PERSON.sara)).tables.reg_people?.[0] ?? {});
      assert.deepEqual(await columnsOf(), [...REGISTRY_TABLES.reg_people.columns]);
      await hub.revoke('REVOKE_NEXT', 'reg_people', ['full_name', 'birth_date']);
      assert.deepEqual(await columnsOf(), ['national_id', 'gender', 'marital_status']);
      await hub.revoke('REVOKE_NEXT', 'reg_people');
      assert.deepEqual(
        (await person(token, PERSON.sara)).text,
        (await person(token, UNKNOWN_PERSON)).text.replace(UNKNOWN_PERSON, PERSON.sara),
      );
    });

    it('a revoke made by another hub process on the same warehouse takes effect on the very next call', async () => {
      await hub.grant('REVOKE_OTHER', 'reg_people', ['national_id', 'full_name']);
      const { token } = await hub.createCaller('REVOKE_OTHER');
      assert.deepEqual(personBody(await person(token, PERSON.sara)).tables, {
        reg_people: [{ national_id: PERSON.sara, full_name: 'سارة يوسف خليل' }],
      });
      const otherDir = await createTempDir('hub-api-other-');
      const other = openTestContext(db.url(), otherDir);
      try {
        await revokeAccess(other, {
          consumer: 'REVOKE_OTHER',
          table: 'reg_people',
          columns: ['full_name'],
          actor: superAdmin,
        });
        assert.deepEqual(personBody(await person(token, PERSON.sara)).tables, {
          reg_people: [{ national_id: PERSON.sara }],
        });
        await grantAccess(other, {
          ...GRANT_TERMS,
          consumer: 'REVOKE_OTHER',
          table: 'veh_vehicles',
          columns: ['national_id', 'registration_number'],
          actor: superAdmin,
        });
        assert.deepEqual(personBody(await person(token, PERSON.sara)).tables, {
          reg_people: [{ national_id: PERSON.sara }],
          veh_vehicles: [{ national_id: PERSON.sara, registration_number: '20-2001' }],
        });
        await revokeAccess(other, {
          consumer: 'REVOKE_OTHER',
          table: 'reg_people',
          columns: [],
          actor: superAdmin,
        });
        await revokeAccess(other, {
          consumer: 'REVOKE_OTHER',
          table: 'veh_vehicles',
          columns: [],
          actor: superAdmin,
        });
        assertApiError(await person(token, PERSON.sara), 404, 'not_found');
      } finally {
        await closeContext(other);
        await rm(otherDir, { recursive: true, force: true });
      }
    });
  });

  describe('saved queries', () => {
    it("lists the caller's own saved queries and their parameters, and no other entity's", async () => {
      const { token } = await hub.createCaller('PAY');
      const res = await hub.call('GET', '/api/v1/queries', { token });
      assert.equal(res.status, 200, res.text);
      const { queries } = res.body as {
        queries: Array<{ name: string; params: unknown; columns: string[] }>;
      };
      assert.deepEqual(
        queries.map((q) => q.name),
        ['pay-people', 'pay-vehicle-owners', 'pay-widows-born-before'],
      );
      assert.deepEqual(queries.find((q) => q.name === 'pay-widows-born-before')?.params, {
        born_before: { type: 'date', required: true },
      });
    });

    it('runs a saved query with parameters', async () => {
      const { token } = await hub.createCaller('PAY');
      const body = runBody(
        await runQuery(token, 'pay-widows-born-before', { params: { born_before: '1990-01-01' } }),
      );
      assert.deepEqual(body, {
        query: 'pay-widows-born-before',
        columns: ['reg_people.national_id', 'reg_people.full_name', 'reg_people.birth_date'],
        rows: [
          {
            'reg_people.national_id': PERSON.fatima,
            'reg_people.full_name': 'فاطمة علي حسن',
            'reg_people.birth_date': '1948-07-15',
          },
          {
            'reg_people.national_id': PERSON.sara,
            'reg_people.full_name': 'سارة يوسف خليل',
            'reg_people.birth_date': '1985-12-31',
          },
        ],
        page: 1,
        page_size: 100,
        has_more: false,
      });
      const earlier = runBody(
        await runQuery(token, 'pay-widows-born-before', { params: { born_before: '1950-01-01' } }),
      );
      assert.deepEqual(
        earlier.rows.map((r) => r['reg_people.national_id']),
        [PERSON.fatima],
      );
      const vehicles = runBody(await runQuery(token, 'pay-vehicle-owners', { params: { from_year: 2015 } }));
      assert.deepEqual(vehicles.rows.map((r) => r['veh_vehicles.registration_number']).sort(), [
        '10-1001',
        '20-2001',
      ]);
    });

    it('pages without repeating or skipping rows, and says whether more follow', async () => {
      const { token } = await hub.createCaller('PAY');
      const pages: QueryRunResult[] = [];
      for (let page = 1; page <= 4; page++)
        pages.push(runBody(await runQuery(token, 'pay-people', { page, page_size: 2 })));
      assert.deepEqual(
        pages.map((p) => [p.page, p.page_size, p.rows.length, p.has_more]),
        [
          [1, 2, 2, true],
          [2, 2, 2, true],
          [3, 2, 2, false],
          [4, 2, 0, false],
        ],
      );
      const ids = pages.flatMap((p) => p.rows.map((r) => r['reg_people.national_id']));
      assert.deepEqual(ids, [
        PERSON.mohammad,
        PERSON.fatima,
        PERSON.sara,
        PERSON.omar,
        PERSON.layla,
        PERSON.yousef,
      ]);
      const women = runBody(await runQuery(token, 'pay-people', { params: { gender: 'F' } }));
      assert.deepEqual(
        women.rows.map((r) => r['reg_people.national_id']),
        [PERSON.fatima, PERSON.sara, PERSON.layla],
      );
    });

    it('answers bad parameters with 400 invalid_parameter naming them, and bad paging with 400 invalid_request', async () => {
      const { token } = await hub.createCaller('PAY');
      const before = await fetchWarehouseFingerprint(hub.ctx);
      const name = 'pay-widows-born-before';
      assertApiError(
        await runQuery(token, name, { params: { born_before: '1990-02-30' } }),
        400,
        'invalid_parameter',
        /params\.born_before: must be a real date/,
      );
      assertApiError(
        await runQuery(token, name, { params: { born_before: 'yesterday' } }),
        400,
        'invalid_parameter',
        /params\.born_before/,
      );
      assertApiError(
        await runQuery(token, name, { params: { born_before: 19900101 } }),
        400,
        'invalid_parameter',
        /params\.born_before/,
      );
      assertApiError(
        await runQuery(token, name, { params: { born_before: '1990-01-01', nope: 1 } }),
        400,
        'invalid_parameter',
        /params\.nope: unknown parameter/,
      );
      assertApiError(
        await runQuery(token, name, {}),
        400,
        'invalid_parameter',
        /params\.born_before: required/,
      );
      assertApiError(
        await runQuery(token, 'pay-vehicle-owners', { params: { from_year: 2015.5 } }),
        400,
        'invalid_parameter',
        /params\.from_year: must be an integer/,
      );
      assertApiError(await runQuery(token, 'pay-people', { page: 0 }), 400, 'invalid_request', /page/);
      assertApiError(
        await runQuery(token, 'pay-people', { page_size: 5000 }),
        400,
        'invalid_request',
        /page_size/,
      );
      assertApiError(await runQuery(token, 'pay-people', { page: '1' }), 400, 'invalid_request', /page/);
      assertApiError(
        await runQuery(token, 'pay-people', { sql: 'DROP TABLE reg_people' }),
        400,
        'invalid_request',
        /sql/,
      );
      assert.deepEqual(await fetchWarehouseFingerprint(hub.ctx), before);
    });

    it("answers 404 alike for another entity's query and an unknown one", async () => {
      const { token } = await hub.createCaller('PAY');
      const theirs = assertApiError(await runQuery(token, 'moh-people'), 404, 'not_found');
      const missing = assertApiError(await runQuery(token, 'no-such-query'), 404, 'not_found');
      assert.equal(theirs.replace('moh-people', 'X'), missing.replace('no-such-query', 'X'));
      const { token: mohToken } = await hub.createCaller('MOH');
      assert.equal(runBody(await runQuery(mohToken, 'moh-people')).rows.length, 6);
    });

    it('answers 403 column_not_granted naming table.column once a column the query reads is revoked', async () => {
      const { token } = await hub.createCaller('PAY');
      assert.equal((await runQuery(token, 'pay-vehicle-owners')).status, 200);
      await hub.revoke('PAY', 'veh_vehicles', ['vehicle_type', 'model_year']);
      try {
        assertApiError(
          await runQuery(token, 'pay-vehicle-owners'),
          403,
          'column_not_granted',
          /^not granted: veh_vehicles\.model_year, veh_vehicles\.vehicle_type$/,
        );
      } finally {
        await hub.grant('PAY', 'veh_vehicles');
      }
      assert.equal((await runQuery(token, 'pay-vehicle-owners')).status, 200);
    });

    it('a table the entity may not read answers one 403 naming it, though no column of it is selected', async () => {
      await hub.grant('JOIN', 'reg_people');
      await hub.grant('JOIN', 'reg_households');
      // Selects only people, but the inner join keeps those with a household: the households table shapes the rows.
      await saveQueryAsSuperAdmin(hub, {
        name: 'join-people-in-households',
        entity: 'JOIN',
        tables: ['reg_people', 'reg_households'],
        columns: ['reg_people.full_name'],
      });
      const { token } = await hub.createCaller('JOIN');
      const listed = async () => {
        const res = await hub.call('GET', '/api/v1/queries', { token });
        assert.equal(res.status, 200, res.text);
        const doc = await hub.call('GET', '/api/v1/openapi.json', { token });
        return {
          queries: (res.body as { queries: Array<{ name: string }> }).queries.map((q) => q.name),
          openapi: Object.keys((doc.body as OpenApiBody).paths).filter((p) =>
            p.startsWith('/api/v1/queries/'),
          ),
        };
      };
      assert.equal(runBody(await runQuery(token, 'join-people-in-households')).rows.length, 4);
      assert.deepEqual(await listed(), {
        queries: ['join-people-in-households'],
        openapi: ['/api/v1/queries/join-people-in-households'],
      });

      await hub.revoke('JOIN', 'reg_households');
      assertApiError(
        await runQuery(token, 'join-people-in-households'),
        403,
        'table_not_granted',
        /^not granted: table reg_households$/,
      );
      assert.deepEqual(await listed(), { queries: [], openapi: [] });
      await assert.rejects(
        saveQueryAsSuperAdmin(hub, {
          name: 'join-again',
          entity: 'JOIN',
          tables: ['reg_people', 'reg_households'],
          columns: ['reg_people.full_name'],
        }),
        isHubError('table_not_granted'),
      );

      // The join matches rows on each table's national ID column, so that column is read too.
      await hub.grant('JOIN', 'reg_households', ['region']);
      assertApiError(
        await runQuery(token, 'join-people-in-households'),
        403,
        'column_not_granted',
        /^not granted: reg_households\.national_id$/,
      );
      assert.deepEqual(await listed(), { queries: [], openapi: [] });
      await hub.grant('JOIN', 'reg_households', ['national_id']);
      assert.equal(runBody(await runQuery(token, 'join-people-in-households')).rows.length, 4);
      assert.deepEqual((await listed()).queries, ['join-people-in-households']);
    });

    it('lists and documents a query only while every column it filters and sorts on is readable', async () => {
      await hub.grant('SORT', 'reg_people');
      await saveQueryAsSuperAdmin(hub, {
        name: 'sort-names-by-birth',
        entity: 'SORT',
        tables: ['reg_people'],
        columns: ['reg_people.full_name'],
        conditions: [{ column: 'reg_people.gender', op: '=', value: 'F' }],
        order_by: [{ column: 'reg_people.birth_date', direction: 'desc' }],
      });
      const { token } = await hub.createCaller('SORT');
      const names = async () => {
        const res = await hub.call('GET', '/api/v1/queries', { token });
        const doc = await hub.call('GET', '/api/v1/openapi.json', { token });
        return [
          (res.body as { queries: Array<{ name: string }> }).queries.map((q) => q.name),
          Object.keys((doc.body as OpenApiBody).paths).filter((p) => p.startsWith('/api/v1/queries/')),
        ];
      };
      assert.deepEqual(await names(), [['sort-names-by-birth'], ['/api/v1/queries/sort-names-by-birth']]);
      for (const column of ['birth_date', 'gender']) {
        await hub.revoke('SORT', 'reg_people', [column]);
        assert.deepEqual(await names(), [[], []], `after revoking ${column}`);
        assertApiError(
          await runQuery(token, 'sort-names-by-birth'),
          403,
          'column_not_granted',
          new RegExp(`reg_people\\.${column}`),
        );
        await hub.grant('SORT', 'reg_people', [column]);
      }
      assert.deepEqual(
        runBody(await runQuery(token, 'sort-names-by-birth')).rows.map((r) => r['reg_people.full_name']),
        ['سارة يوسف خليل', 'ليلى نور الدين', 'فاطمة علي حسن'],
      );
    });

    it('limit is the total over all pages; the page where it cuts rows off says "truncated": true', async () => {
      for (const limit of [4, 6]) {
        await saveQueryAsSuperAdmin(hub, {
          name: `pay-first-${limit}`,
          entity: 'PAY',
          tables: ['reg_people'],
          columns: ['reg_people.national_id'],
          limit,
        });
      }
      const { token } = await hub.createCaller('PAY');
      const pages = async (name: string, pageSize: number, count: number) => {
        const shapes: unknown[] = [];
        for (let page = 1; page <= count; page++) {
          const body = runBody(await runQuery(token, name, { page, page_size: pageSize }));
          shapes.push([body.rows.length, body.has_more, 'truncated' in body ? body.truncated : '-']);
        }
        return shapes;
      };
      // Six people: a limit of four cuts two off, a limit of six cuts nothing.
      assert.deepEqual(await pages('pay-first-4', 3, 3), [
        [3, true, '-'],
        [1, false, true],
        [0, false, true],
      ]);
      assert.deepEqual(await pages('pay-first-4', 4, 1), [[4, false, true]]);
      assert.deepEqual(await pages('pay-first-4', 100, 1), [[4, false, true]]);
      assert.deepEqual(await pages('pay-first-6', 3, 3), [
        [3, true, '-'],
        [3, false, '-'],
        [0, false, '-'],
      ]);
      assert.deepEqual(await pages('pay-first-6', 5, 2), [
        [5, true, '-'],
        [1, false, '-'],
      ]);
    });

    it('answers a malformed JSON body with 400 invalid_request as JSON', async () => {
      const { token } = await hub.createCaller('PAY');
      const res = await hub.call('POST', '/api/v1/queries/pay-people', {
        token,
        raw: '{"params": {',
        headers: { 'content-type': 'application/json' },
      });
      assertApiError(res, 400, 'invalid_request', /JSON/);
    });
  });

  describe('GET /api/v1/openapi.json', () => {
    it('describes only granted tables and columns and only runnable queries', async () => {
      await hub.grant('DOC', 'reg_people', ['national_id', 'full_name', 'birth_date']);
      await hub.grant('DOC', 'veh_vehicles');
      for (const [name, columns] of [
        ['doc-people', ['reg_people.national_id', 'reg_people.full_name']],
        ['doc-vehicles', ['veh_vehicles.registration_number', 'veh_vehicles.model_year']],
      ] as const) {
        await saveQueryAsSuperAdmin(hub, {
          name,
          entity: 'DOC',
          tables: [columns[0].split('.')[0]],
          columns: [...columns],
        });
      }
      const { token } = await hub.createCaller('DOC');
      const fetchDoc = async () => {
        const res = await hub.call('GET', '/api/v1/openapi.json', { token });
        assert.equal(res.status, 200, res.text);
        return res.body as OpenApiBody;
      };
      const first = await fetchDoc();
      assert.match(first.openapi, /^3\./);
      assert.deepEqual(describePersonColumns(first), {
        reg_people: ['national_id', 'full_name', 'birth_date'],
        veh_vehicles: [...REGISTRY_TABLES.veh_vehicles.columns],
      });
      assert.deepEqual(
        Object.keys(first.paths).filter((p) => p.startsWith('/api/v1/queries/')),
        ['/api/v1/queries/doc-people', '/api/v1/queries/doc-vehicles'],
      );

      await hub.revoke('DOC', 'veh_vehicles', ['model_year']);
      const second = await fetchDoc();
      assert.deepEqual(describePersonColumns(second), {
        reg_people: ['national_id', 'full_name', 'birth_date'],
        veh_vehicles: ['national_id', 'registration_number', 'vehicle_type', 'insured'],
      });
      assert.deepEqual(
        Object.keys(second.paths).filter((p) => p.startsWith('/api/v1/queries/')),
        ['/api/v1/queries/doc-people'],
      );
      assert.doesNotMatch(JSON.stringify(second), /model_year|reg_households|pay-|moh-/);
    });
  });

  describe('rate limits', () => {
    it('answers the call past rate_per_minute with 429 and Retry-After, and passes again a minute later', async () => {
      const { token } = await hub.createCaller('NAF', { ratePerMinute: 3 });
      for (let i = 0; i < 3; i++)
        assert.equal((await hub.call('GET', '/api/v1/queries', { token })).status, 200);
      const limited = await hub.call('GET', '/api/v1/queries', { token });
      assertApiError(limited, 429, 'rate_limited', /per minute/);
      const retryAfter = Number(limited.headers.get('retry-after'));
      assert.ok(
        Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
        `Retry-After ${retryAfter}`,
      );
      // Another client of the same entity has its own window.
      const { token: neighbour } = await hub.createCaller('NAF', { ratePerMinute: 3 });
      assert.equal((await hub.call('GET', '/api/v1/queries', { token: neighbour })).status, 200);
      hub.clock.advance(MINUTE);
      assert.equal((await hub.call('GET', '/api/v1/queries', { token })).status, 200);
    });

    it('answers the call past rate_per_day with 429 until the next day', async () => {
      const { credentials, token } = await hub.createCaller('NAF', { ratePerMinute: 100, ratePerDay: 2 });
      for (let i = 0; i < 2; i++) assert.equal((await person(token, PERSON.omar)).status, 200);
      const limited = await person(token, PERSON.omar);
      assertApiError(limited, 429, 'rate_limited', /per day/);
      assert.ok(
        Number(limited.headers.get('retry-after')) > 60,
        `Retry-After ${limited.headers.get('retry-after')}`,
      );
      hub.clock.advance(MINUTE);
      assertApiError(await person(token, PERSON.omar), 429, 'rate_limited', /per day/);
      hub.clock.advance(DAY);
      // The first token has expired by now; a new one starts the new day's count.
      const fresh = await hub.fetchToken(credentials);
      assert.equal((await person(fresh, PERSON.omar)).status, 200);
    });
  });

  describe('errors', () => {
    it('answers unknown routes with 404 JSON', async () => {
      const { token } = await hub.createCaller('NAF');
      assertApiError(await hub.call('GET', '/no-such-page'), 404, 'not_found', /GET \/no-such-page/);
      assertApiError(await hub.call('GET', '/api/v1/no-such-route', { token }), 404, 'not_found');
      assertApiError(
        await hub.call('DELETE', `/api/v1/persons/${PERSON.mohammad}`, { token }),
        404,
        'not_found',
      );
      assertApiError(await hub.call('POST', '/api/v1/persons', { token, json: {} }), 404, 'not_found');
    });

    it('answers an oversized body with a 4xx JSON error, not a 500', async () => {
      const res = await hub.call('POST', '/api/v1/token', {
        json: { grant_type: 'client_credentials', client_id: 'x', client_secret: 'y'.repeat(200_000) },
      });
      assert.ok(res.status >= 400 && res.status < 500, `status ${res.status}: ${res.text}`);
      assertOAuthError(res, res.status, 'invalid_request');
    });
  });
});
