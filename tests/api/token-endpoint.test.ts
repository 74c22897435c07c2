import assert from 'node:assert/strict';
import type { ClientCredentials } from '../../server/services/client-service.ts';
import {
  MAX_FAILURES_PER_ADDRESS,
  MAX_FAILURES_PER_CLIENT,
  TOKEN_FAILURE_WINDOW_MS,
} from '../../server/services/token-throttle.ts';
import {
  assertOAuthError,
  callApi,
  fetchWarehouseFingerprint,
  sendRawRequest,
  serveAnotherHub,
  startApiHub,
  type ApiHub,
  type ApiResponse,
  type CallOptions,
} from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { countTokenFailures } from '../support/token-failures.ts';

const TOKEN = '/api/v1/token';

const basic = (id: string, secret: string) =>
  `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

/**
 * A form-encoded token request sent from a chosen loopback address (Linux routes all of
 * 127.0.0.0/8 to the loopback interface), so that one test can play several callers.
 */
function postTokenFrom(
  baseUrl: string,
  localAddress: string,
  form: Record<string, string>,
  headers: Record<string, string> = {},
): Promise<ApiResponse> {
  return sendRawRequest(
    `${baseUrl}${TOKEN}`,
    {
      method: 'POST',
      localAddress,
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    },
    new URLSearchParams(form).toString(),
  );
}

describeEachDatabase('Token endpoint: OAuth2 client authentication, errors and throttling', (db) => {
  let hub: ApiHub;
  let naf: ClientCredentials;
  let address = 10;
  /** A loopback address no earlier test has used, so each test starts with no failures counted. */
  const freshAddress = () => `127.0.0.${(address += 1)}`;
  const good = (credentials: ClientCredentials) => ({ grant_type: 'client_credentials', ...credentials });
  const wrong = (credentials: ClientCredentials, n = 0) => ({
    grant_type: 'client_credentials',
    client_id: credentials.client_id,
    client_secret: `wrong-${n}`,
  });
  const failures = (subject: string) => countTokenFailures(hub.ctx.knex, subject);

  before(async () => {
    hub = await startApiHub(db.url());
    naf = await hub.createClient('REG');
  });

  after(async () => {
    await hub?.close();
  });

  beforeEach(() => {
    // Every test in a fresh throttle window.
    hub.clock.advance(TOKEN_FAILURE_WINDOW_MS);
  });

  describe('client authentication', () => {
    it('issues a token to HTTP Basic credentials (RFC 6749 §2.3.1), from a form or a JSON body', async () => {
      const requests: CallOptions[] = [
        {
          form: { grant_type: 'client_credentials' },
          headers: { authorization: basic(naf.client_id, naf.client_secret) },
        },
        {
          json: { grant_type: 'client_credentials' },
          headers: { authorization: basic(naf.client_id, naf.client_secret) },
        },
        // A client that also names itself in the body, as some libraries do.
        {
          form: { grant_type: 'client_credentials', client_id: naf.client_id },
          headers: { authorization: basic(naf.client_id, naf.client_secret) },
        },
      ];
      for (const options of requests) {
        const res = await hub.call('POST', TOKEN, options);
        assert.equal(res.status, 200, res.text);
        const body = res.body as { access_token: string; token_type: string; expires_in: number };
        assert.equal(body.token_type, 'Bearer');
        assert.equal(res.headers.get('cache-control'), 'no-store');
        assert.equal(res.headers.get('pragma'), 'no-cache');
        assert.equal((await hub.call('GET', '/api/v1/queries', { token: body.access_token })).status, 200);
      }
    });

    it('answers wrong Basic credentials with 401 invalid_client and a WWW-Authenticate challenge', async () => {
      const before = await fetchWarehouseFingerprint(hub.ctx);
      const wrongSecret = await hub.call('POST', TOKEN, {
        form: { grant_type: 'client_credentials' },
        headers: { authorization: basic(naf.client_id, 'not-the-secret') },
      });
      const unknown = await hub.call('POST', TOKEN, {
        form: { grant_type: 'client_credentials' },
        headers: { authorization: basic('naf-00000000', naf.client_secret) },
      });
      assert.equal(
        assertOAuthError(wrongSecret, 401, 'invalid_client', /client authentication failed/),
        assertOAuthError(unknown, 401, 'invalid_client'),
      );
      assert.deepEqual(await fetchWarehouseFingerprint(hub.ctx), before);
    });

    it('refuses two authentication methods at once, a malformed Basic header and a client id that disagrees', async () => {
      const cases: Array<[Record<string, string>, Record<string, string>, RegExp]> = [
        [
          good(naf),
          { authorization: basic(naf.client_id, naf.client_secret) },
          /one client authentication method/,
        ],
        [{ grant_type: 'client_credentials' }, { authorization: 'Basic %%%' }, /Basic must carry/],
        [
          { grant_type: 'client_credentials' },
          { authorization: `Basic ${Buffer.from('no-colon').toString('base64')}` },
          /Basic must carry/,
        ],
        [
          { grant_type: 'client_credentials' },
          { authorization: `Basic ${Buffer.from('naf-1:%E0%A4%A').toString('base64')}` },
          /form encoding/,
        ],
        [
          { grant_type: 'client_credentials', client_id: 'naf-someone-else' },
          { authorization: basic(naf.client_id, naf.client_secret) },
          /client_id: differs/,
        ],
      ];
      for (const [form, headers, description] of cases) {
        assertOAuthError(
          await hub.call('POST', TOKEN, { form, headers }),
          400,
          'invalid_request',
          description,
        );
      }
    });

    it('answers every method but POST with 405 and Allow: POST', async () => {
      for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
        const res = await hub.call(method, TOKEN);
        assertOAuthError(res, 405, 'invalid_request', /POST/);
        assert.equal(res.headers.get('allow'), 'POST');
      }
    });

    it('audits every failure as token.failed with its reason, never with the secret', async () => {
      const ip = freshAddress();
      await postTokenFrom(hub.baseUrl, ip, wrong(naf, 1));
      await postTokenFrom(hub.baseUrl, ip, { grant_type: 'password', ...naf });
      await postTokenFrom(hub.baseUrl, ip, {
        grant_type: 'client_credentials',
        client_id: 'naf-00000000',
        client_secret: 'x',
      });
      const rows = await hub.ctx
        .knex('hub_audit')
        .where({ action: 'token.failed' })
        .andWhere('details', 'like', `%"${ip}"%`)
        .orderBy('id')
        .select<Array<{ actor: string; details: string }>>('actor', 'details');
      assert.deepEqual(
        rows.map((r) => [r.actor, JSON.parse(r.details) as unknown]),
        [
          [naf.client_id, { ip, error: 'invalid_client', status: 401, reason: 'bad_secret' }],
          [naf.client_id, { ip, error: 'unsupported_grant_type', status: 400 }],
          ['naf-00000000', { ip, error: 'invalid_client', status: 401, reason: 'unknown_client' }],
        ],
      );
      assert.ok(rows.every((r) => !r.details.includes(naf.client_secret) && !r.details.includes('wrong-1')));
    });
  });

  describe('throttling failed requests', () => {
    it(`refuses an address with 429 and Retry-After after ${MAX_FAILURES_PER_ADDRESS} failures in a minute, even with a right secret`, async () => {
      const ip = freshAddress();
      // Each failure names another client id, so only the address's count reaches its limit.
      for (let i = 0; i < MAX_FAILURES_PER_ADDRESS; i += 1) {
        const res = await postTokenFrom(hub.baseUrl, ip, {
          grant_type: 'client_credentials',
          client_id: `naf-burst${i}`,
          client_secret: 'guess',
        });
        assertOAuthError(res, 401, 'invalid_client');
      }
      for (const form of [wrong(naf), good(naf)]) {
        const res = await postTokenFrom(hub.baseUrl, ip, form);
        assertOAuthError(res, 429, 'rate_limited', new RegExp(`from address ${ip.replaceAll('.', '\\.')}`));
        const retryAfter = Number(res.headers.get('retry-after'));
        assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
      }
      // Refused requests are not counted again: the burst costs one read each.
      assert.equal(await failures(`address:${ip}`), MAX_FAILURES_PER_ADDRESS);
      // Other addresses are not affected, and the address may try again in the next window.
      assert.equal((await postTokenFrom(hub.baseUrl, freshAddress(), good(naf))).status, 200);
      hub.clock.advance(TOKEN_FAILURE_WINDOW_MS);
      assert.equal((await postTokenFrom(hub.baseUrl, ip, good(naf))).status, 200);
    });

    it(`refuses a client id with 429 after ${MAX_FAILURES_PER_CLIENT} failures in a minute from any addresses`, async () => {
      const target = await hub.createClient('REG');
      for (let i = 0; i < MAX_FAILURES_PER_CLIENT; i += 1) {
        assertOAuthError(
          await postTokenFrom(hub.baseUrl, freshAddress(), wrong(target, i)),
          401,
          'invalid_client',
        );
      }
      const refused = await postTokenFrom(hub.baseUrl, freshAddress(), good(target));
      assertOAuthError(refused, 429, 'rate_limited', /this client id/);
      assert.ok(Number(refused.headers.get('retry-after')) >= 1);
      // Basic names the client just the same.
      assertOAuthError(
        await hub.call('POST', TOKEN, {
          form: { grant_type: 'client_credentials' },
          headers: { authorization: basic(target.client_id, target.client_secret) },
        }),
        429,
        'rate_limited',
      );
      // Another client from the same addresses is served.
      assert.equal((await postTokenFrom(hub.baseUrl, freshAddress(), good(naf))).status, 200);
      const throttled = await hub.ctx
        .knex('hub_audit')
        .where({ action: 'token.failed', actor: target.client_id })
        .andWhere('details', 'like', '%rate_limited%')
        .select('id');
      assert.equal(throttled.length, 2);
    });

    it('counts malformed and incomplete requests against the address too', async () => {
      const ip = freshAddress();
      for (let i = 0; i < MAX_FAILURES_PER_ADDRESS; i += 1) {
        const res = await postTokenFrom(hub.baseUrl, ip, { grant_type: 'client_credentials' });
        assertOAuthError(res, 401, 'invalid_client', /no client authentication/);
      }
      assertOAuthError(await postTokenFrom(hub.baseUrl, ip, good(naf)), 429, 'rate_limited');
    });

    it('shares the count between hub processes on one warehouse', async () => {
      const second = await serveAnotherHub(hub);
      try {
        const target = await hub.createClient('REG');
        for (let i = 0; i < MAX_FAILURES_PER_CLIENT; i += 1) {
          // Alternately to each process.
          const url = i % 2 === 0 ? hub.baseUrl : second.baseUrl;
          assertOAuthError(await postTokenFrom(url, freshAddress(), wrong(target, i)), 401, 'invalid_client');
        }
        for (const url of [hub.baseUrl, second.baseUrl]) {
          assertOAuthError(await postTokenFrom(url, freshAddress(), good(target)), 429, 'rate_limited');
        }
        // A token from the second process is good at the first: the key is shared through the key file.
        hub.clock.advance(TOKEN_FAILURE_WINDOW_MS);
        const issued = await callApi(second.baseUrl, 'POST', TOKEN, { json: good(target) });
        assert.equal(issued.status, 200, issued.text);
        const token = (issued.body as { access_token: string }).access_token;
        assert.equal((await hub.call('GET', '/api/v1/queries', { token })).status, 200);
      } finally {
        await second.close();
      }
    });

    it('checks client secrets with an HMAC, never a slow hash, and answers a burst of wrong secrets from the count', async () => {
      const target = await hub.createClient('REG');
      const stored = await hub.ctx
        .knex('hub_clients')
        .where({ client_id: target.client_id })
        .first<{ secret_hash: string }>('secret_hash');
      assert.match(stored.secret_hash, /^hmac-sha256\$[a-z0-9]{12}\$[\w-]{43}$/);
      const ip = freshAddress();
      const statuses: number[] = [];
      for (let i = 0; i < 60; i += 1)
        statuses.push((await postTokenFrom(hub.baseUrl, ip, wrong(target, i))).status);
      assert.deepEqual(statuses, [
        ...Array<number>(MAX_FAILURES_PER_CLIENT).fill(401),
        ...Array<number>(60 - MAX_FAILURES_PER_CLIENT).fill(429),
      ]);
      assert.equal(await failures(`client:${target.client_id}`), MAX_FAILURES_PER_CLIENT);
    });
  });
});
