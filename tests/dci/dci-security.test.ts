import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { SignJWT } from 'jose';
import { saveClientPublicKey } from '../../server/dci/client-keys.ts';
import { buildDigest, parseSignature } from '../../server/dci/dci-signature.ts';
import { TOKEN_TTL_SECONDS } from '../../server/services/token-service.ts';
import { MAX_FAILURES_PER_CLIENT } from '../../server/services/token-throttle.ts';
import { callApi } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { countTokenFailures } from '../support/token-failures.ts';
import { assertDciError, recordsOf, searchItems, sendChecked, sendValid } from './support/dci-assert.ts';
import {
  buildEnvelope,
  buildSearch,
  byUin,
  createSenderKey,
  P,
  signEnvelope,
  startDciHub,
  type DciHub,
} from './support/dci-hub.ts';
import { assertValid, responseSchema, schemaAt } from './support/dci-schemas.ts';

type Json = Record<string, unknown>;
const PLACEHOLDER = 'Signature: namespace="dci", signature="not-signed"';

/** Checks a hub signature the way a DCI receiver does: the kid from the JWKS, the digest of header and message. */
async function assertSignedByHub(hub: DciHub, body: Json): Promise<void> {
  const jwks = await callApi(hub.baseUrl, 'GET', '/.well-known/jwks.json');
  const [jwk] = (jwks.body as { keys: Array<Json & { kid: string }> }).keys;
  const parts = parseSignature(String(body.signature));
  assert.ok(parts !== null, 'signature in the DCI format');
  assert.equal(parts.algorithm, 'ed25519');
  assert.equal(parts.kidId.split('|')[1], jwk!.kid);
  const signed = `(created): ${parts.created}\n(expires): ${parts.expires}\ndigest: BLAKE-512=${buildDigest(body.header, body.message)}`;
  const key = createPublicKey({ key: jwk!, format: 'jwk' });
  assert.ok(
    verify(null, Buffer.from(signed), key, Buffer.from(parts.signature, 'base64')),
    'the signature verifies with the published key',
  );
}

describeEachDatabase('DCI security: bearer tokens, signatures, JWKS', (db) => {
  let hub: DciHub;
  let token: string;
  let clientId: string;
  const search = () => buildEnvelope('search', buildSearch(byUin(P.huda)));

  before(async () => {
    hub = await startDciHub(db.url(), { HUB_DCI_PLACEHOLDER_SIGNATURES: PLACEHOLDER });
    await hub.grant('SPMIS', 'cspd_personal_info');
    const caller = await hub.createCaller('SPMIS');
    token = caller.token;
    clientId = caller.credentials.client_id;
  });
  after(async () => hub?.close());

  it('issues the same tokens at the authz endpoint as at /api/v1/token, and refuses bad credentials', async () => {
    const { credentials } = await hub.createCaller('SPMIS');
    const res = await callApi(hub.baseUrl, 'POST', '/dci/oauth2/client/token', {
      form: { grant_type: 'client_credentials', ...credentials },
    });
    assert.equal(res.status, 200, res.text);
    assertValid(schemaAt('authz', '/components/schemas/OAuth2ClientTokenResponse'), res.body, 'token answer');
    // RFC 6749 §5.1: a token answer is never cached, here as at /api/v1/token.
    assert.equal(res.headers.get('cache-control'), 'no-store');
    assert.equal(res.headers.get('pragma'), 'no-cache');
    const dciToken = (res.body as { access_token: string }).access_token;
    assert.equal(
      (await callApi(hub.baseUrl, 'GET', `/api/v1/persons/${P.huda}`, { token: dciToken })).status,
      200,
    );
    const apiToken = (
      (
        await callApi(hub.baseUrl, 'POST', '/api/v1/token', {
          json: { grant_type: 'client_credentials', ...credentials },
        })
      ).body as { access_token: string }
    ).access_token;
    assert.equal((await sendValid(hub, 'crvs', '/registry/sync/search', search(), apiToken)).status, 200);
    const wrong = await callApi(hub.baseUrl, 'POST', '/dci/oauth2/client/token', {
      form: { grant_type: 'client_credentials', client_id: credentials.client_id, client_secret: 'wrong' },
    });
    assert.equal(wrong.status, 401);
    assert.equal((wrong.body as { error: string }).error, 'invalid_client');
    assert.equal(wrong.headers.get('cache-control'), 'no-store');
    assert.equal(wrong.headers.get('pragma'), 'no-cache');
    assert.match(wrong.headers.get('www-authenticate') ?? '', /^Basic realm=/);
  });

  it('throttles the authz endpoint as /api/v1/token: after a client id’s failures, 429 with Retry-After, even for the right secret', async () => {
    const { credentials } = await hub.createCaller('SPMIS');
    const form = (secret: string) => ({
      grant_type: 'client_credentials',
      client_id: credentials.client_id,
      client_secret: secret,
    });
    for (let i = 0; i < MAX_FAILURES_PER_CLIENT; i += 1) {
      const res = await callApi(hub.baseUrl, 'POST', '/dci/oauth2/client/token', {
        form: form(`guess-${i}`),
      });
      assert.equal(res.status, 401, res.text);
    }
    const refused = await callApi(hub.baseUrl, 'POST', '/dci/oauth2/client/token', {
      form: form(credentials.client_secret),
    });
    assert.equal(refused.status, 429, refused.text);
    assert.equal((refused.body as { error: string }).error, 'rate_limited');
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
    assert.equal(refused.headers.get('pragma'), 'no-cache');
    assert.ok(!('access_token' in (refused.body as object)), refused.text);
  });

  it('answers a malformed token request at the authz endpoint as /api/v1/token does: 400 invalid_request, counted and audited', async () => {
    const failures = () => countTokenFailures(hub.ctx.knex, 'address:127.0.0.1');
    const audited = async () =>
      Number(
        (
          await hub.ctx
            .knex('hub_audit')
            .where({ action: 'token.failed' })
            .count<Array<{ n: number | string }>>({ n: '*' })
        )[0]?.n ?? 0,
      );
    const [countBefore, auditedBefore] = [await failures(), await audited()];
    const res = await callApi(hub.baseUrl, 'POST', '/dci/oauth2/client/token', {
      raw: '{"grant_type": "client_credentials",',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(res.status, 400, res.text);
    assert.deepEqual(res.body, {
      error: 'invalid_request',
      error_description: 'request body is not valid JSON',
      errors: [{ code: 'invalid_request', message: 'request body is not valid JSON' }],
    });
    assert.equal(res.headers.get('pragma'), 'no-cache');
    assert.equal(await failures(), countBefore + 1);
    assert.equal(await audited(), auditedBefore + 1);
  });

  it('answers every method but POST at the token endpoint with 405 and Allow: POST, as /api/v1/token does', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      const res = await callApi(hub.baseUrl, method, '/dci/oauth2/client/token');
      assert.equal(res.status, 405, `${method}: ${res.text}`);
      assert.equal(res.headers.get('allow'), 'POST');
      const body = res.body as { error: string; error_description: string; errors: unknown[] };
      assert.equal(body.error, 'invalid_request');
      assert.match(
        body.error_description,
        new RegExp(`^${method} is not allowed here: .*POST /dci/oauth2/client/token$`),
      );
      assert.deepEqual(body.errors, [{ code: 'invalid_request', message: body.error_description }]);
    }
  });

  it('refuses a sender over its rate limit with 429 err.request.too_many_requests and Retry-After, on sync and async paths', async () => {
    const { token: limited } = await hub.createCaller('SPMIS', 2);
    for (let i = 0; i < 2; i += 1)
      assert.equal((await sendValid(hub, 'crvs', '/registry/sync/search', search(), limited)).status, 200);
    for (const apiPath of ['/registry/sync/search', '/registry/search']) {
      const refused = await sendChecked(hub, 'crvs', apiPath, search(), limited);
      assert.match(assertDciError(refused, 429, 'err.request.too_many_requests'), /per minute/);
      const retryAfter = Number(refused.headers.get('retry-after'));
      assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${retryAfter}`);
      assert.doesNotMatch(refused.text, new RegExp(P.huda), 'a refused search returns no one');
    }
    hub.clock.advance(60_000);
    try {
      assert.equal((await sendValid(hub, 'crvs', '/registry/sync/search', search(), limited)).status, 200);
    } finally {
      hub.clock.advance(-60_000);
    }
  });

  it('answers 401 with a JSON error for a missing, forged or expired token on every DCI path', async () => {
    const forged = await new SignJWT({ ent: 'SPMIS' })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(clientId)
      .setIssuer('registry-hub')
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(Buffer.alloc(32, 7));
    for (const [registry, apiPath] of [
      ['social', '/registry/sync/search'],
      ['social', '/registry/search'],
      ['social', '/registry/txn/on-status'],
      ['crvs', '/registry/subscribe'],
      ['crvs', '/registry/notify'],
      ['crvs', '/registry/sync/txn/status'],
    ] as const) {
      for (const bad of [undefined, 'not-a-token', forged]) {
        const res = await sendChecked(hub, registry, apiPath, search(), bad);
        assertDciError(res, 401, 'err.request.unauthorized');
      }
    }
    hub.clock.advance((TOKEN_TTL_SECONDS + 1) * 1000);
    try {
      const expired = await sendChecked(hub, 'crvs', '/registry/sync/search', search(), token);
      assert.match(assertDciError(expired, 401, 'err.request.unauthorized'), /expired/);
    } finally {
      hub.clock.advance(-(TOKEN_TTL_SECONDS + 1) * 1000);
    }
  });

  it('signs its answers with Ed25519 in the DCI format, with the key it publishes at /.well-known/jwks.json', async () => {
    const jwks = await callApi(hub.baseUrl, 'GET', '/.well-known/jwks.json');
    assert.equal(jwks.status, 200);
    assertValid(responseSchema('jwks', '/.well-known/jwks.json', 200, 'get'), jwks.body, 'JWKS');
    const [jwk] = (jwks.body as { keys: Json[] }).keys;
    assert.deepEqual([jwk!.kty, jwk!.crv, jwk!.use, jwk!.alg], ['OKP', 'Ed25519', 'sig', 'EdDSA']);
    assert.equal(jwk!.d, undefined, 'no private part');
    const res = await sendValid(hub, 'crvs', '/registry/sync/search', search(), token);
    await assertSignedByHub(hub, res.body as Json);
  });

  it('verifies a sender’s signature against its registered key; unsigned and wrongly signed messages are refused', async () => {
    const { credentials, token: signer } = await hub.createCaller('SPMIS');
    const sender = createSenderKey();
    const other = createSenderKey();
    // Before a key is registered, an unsigned message and the placeholder pass; a real signature cannot be checked.
    assert.equal((await sendValid(hub, 'crvs', '/registry/sync/search', search(), signer)).status, 200);
    assert.equal(
      (await sendValid(hub, 'crvs', '/registry/sync/search', { signature: PLACEHOLDER, ...search() }, signer))
        .status,
      200,
    );
    assertDciError(
      await sendChecked(
        hub,
        'crvs',
        '/registry/sync/search',
        signEnvelope(search(), sender.privateKey, hub.clock.now()),
        signer,
      ),
      401,
      'err.signature.invalid',
    );

    await saveClientPublicKey(hub.ctx, credentials.client_id, sender.publicPem, 'test');
    const signed = signEnvelope(search(), sender.privateKey, hub.clock.now());
    const ok = await sendValid(hub, 'crvs', '/registry/sync/search', signed, signer);
    assert.equal(ok.status, 200, ok.text);
    assert.equal(recordsOf(searchItems(ok.body)[0])[0]!.identifier, P.huda);

    const tampered = { ...signed, message: { ...(signed.message as Json), transaction_id: 'changed' } };
    const cases: Array<[string, Json, string]> = [
      ['unsigned', search(), 'err.signature.missing'],
      ['placeholder', { signature: PLACEHOLDER, ...search() }, 'err.signature.missing'],
      [
        'signed by another key',
        signEnvelope(search(), other.privateKey, hub.clock.now()),
        'err.signature.invalid',
      ],
      ['message changed after signing', tampered, 'err.signature.invalid'],
      ['garbage', { signature: 'Signature: nonsense', ...search() }, 'err.signature.invalid'],
      [
        'expired',
        signEnvelope(search(), sender.privateKey, new Date(hub.clock.now().getTime() - 3_600_000)),
        'err.signature.invalid',
      ],
    ];
    for (const apiPath of ['/registry/sync/search', '/registry/search']) {
      for (const [why, body, code] of cases) {
        const res = await sendChecked(hub, 'crvs', apiPath, body, signer);
        assert.equal(res.status, 401, `${apiPath} ${why}: ${res.text}`);
        assertDciError(res, 401, code);
      }
    }
    const received = await hub.ctx.knex('hub_dci_received').count<Array<{ n: number | string }>>({ n: '*' });
    assert.equal(Number(received[0]!.n), 0, 'nothing refused was stored');
  });

  it('refuses a key that is not an Ed25519 public key', async () => {
    const { credentials } = await hub.createCaller('SPMIS');
    await assert.rejects(
      saveClientPublicKey(hub.ctx, credentials.client_id, 'not a key', 'test'),
      /not a PEM public key/,
    );
    await assert.rejects(
      saveClientPublicKey(hub.ctx, credentials.client_id, '-----BEGIN PRIVATE KEY-----\n', 'test'),
      /not the private key/,
    );
    await assert.rejects(
      saveClientPublicKey(hub.ctx, 'no-such-client', createSenderKey().publicPem, 'test'),
      /no API client/,
    );
  });
});
