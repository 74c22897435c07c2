import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { generate } from 'otplib';
import { closeContext, type AppContext } from '../../../server/context.ts';
import {
  createClient,
  disableClient,
  fetchClient,
  fetchClients,
  rotateClientSecret,
  verifyClientCredentials,
} from '../../../server/services/client-service.ts';
import { hashSecret, verifySecret } from '../../../server/services/password-hash.ts';
import { createUser, LOCKOUT_MS, verifyUserLogin } from '../../../server/services/user-service.ts';
import { verifyAuditChain } from '../../../warehouse/audit/verify-audit-chain.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { createTempDir, describeEachDatabase } from '../../support/databases.ts';
import { createManualClock, insertEntities, openTestContext } from '../../support/hub-context.ts';
import { isHubError } from '../../support/hub-errors.ts';

const ACTOR = 'test:admin';

const readSecretFromUri = (uri: string) => new URL(uri).searchParams.get('secret') ?? '';

describe('password hashing', () => {
  it('stores scrypt with its parameters and a random salt, and verifies only the right secret', async () => {
    const [a, b] = await Promise.all([hashSecret('correct horse'), hashSecret('correct horse')]);
    assert.match(a, /^scrypt\$32768\$8\$3\$[\w-]+\$[\w-]+$/);
    assert.notEqual(a, b);
    assert.equal(await verifySecret('correct horse', a), true);
    assert.equal(await verifySecret('correct horsE', a), false);
    assert.equal(await verifySecret('correct horse', undefined), false);
    assert.equal(await verifySecret('correct horse', 'plain-text'), false);
    assert.equal(await verifySecret('correct horse', 'scrypt$3$8$1$c2FsdA$aGFzaA'), false);
  });
});

describeEachDatabase('API clients and portal users', (db) => {
  let dir: string;
  let ctx: AppContext;
  const clock = createManualClock('2026-02-01T08:00:00.000Z');
  const codeAt = (secret: string) => generate({ secret, epoch: Math.floor(clock.now().getTime() / 1000) });
  const countRows = async (table: string) =>
    Number((await ctx.knex(table).count<Array<{ n: number | string }>>({ n: '*' }))[0]?.n);

  before(async () => {
    dir = await createTempDir('hub-identities-');
    ctx = openTestContext(db.url(), dir, { clock });
    await migrateWarehouse(ctx.knex);
    await insertEntities(ctx, 'NAF', 'CSPD');
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  describe('clients', () => {
    it('creates a client whose secret is stored only as a hash', async () => {
      const created = await createClient(
        ctx,
        { entity: 'naf', name: 'NAF MIS', ratePerMinute: 30, allowedIps: ['10.0.0.7', '::1'] },
        ACTOR,
      );
      assert.match(created.client_id, /^naf-[0-9a-f]{8}$/);
      assert.match(created.client_secret, /^[\w-]{43}$/);

      const stored = await ctx
        .knex('hub_clients')
        .where({ client_id: created.client_id })
        .first<Record<string, unknown>>();
      assert.ok(!Object.values(stored).some((v) => String(v).includes(created.client_secret)));
      assert.match(String(stored.secret_hash), /^hmac-sha256\$[a-z0-9]{12}\$[\w-]{43}$/);
      const client = await fetchClient(ctx, created.client_id);
      assert.deepEqual(client, {
        client_id: created.client_id,
        entity: 'NAF',
        name: 'NAF MIS',
        status: 'active',
        allowed_ips: ['10.0.0.7', '::1'],
        rate_per_minute: 30,
        rate_per_day: 50_000,
        created_at: clock.now().toISOString(),
        secret_rotated_at: clock.now().toISOString(),
      });
      const audit = await ctx
        .knex('hub_audit')
        .where({ action: 'client.create', target: created.client_id })
        .first<{ actor: string; details: string }>();
      assert.equal(audit.actor, ACTOR);
      assert.ok(!audit.details.includes(created.client_secret));
    });

    it('refuses an unknown entity, bad limits and bad addresses, and creates nothing', async () => {
      const before = await countRows('hub_clients');
      await assert.rejects(createClient(ctx, { entity: 'NOPE' }, ACTOR), isHubError('unknown_entity', 404));
      await assert.rejects(
        createClient(ctx, { entity: 'NAF', ratePerDay: 0 }, ACTOR),
        isHubError('invalid_request', 400),
      );
      await assert.rejects(
        createClient(ctx, { entity: 'NAF', allowedIps: ['10.0.0.300'] }, ACTOR),
        /not an IP address: 10\.0\.0\.300/,
      );
      assert.equal(await countRows('hub_clients'), before);
      assert.equal(await fetchClient(ctx, 'naf-00000000'), null);
    });

    it('verifies good, wrong, unknown, disabled and rotated credentials', async () => {
      const { client_id, client_secret } = await createClient(ctx, { entity: 'CSPD' }, ACTOR);
      const good = await verifyClientCredentials(ctx, client_id, client_secret);
      assert.equal(good.ok && good.client.entity, 'CSPD');
      assert.deepEqual(await verifyClientCredentials(ctx, client_id, `${client_secret}x`), {
        ok: false,
        reason: 'bad_secret',
      });
      assert.deepEqual(await verifyClientCredentials(ctx, 'cspd-ffffffff', client_secret), {
        ok: false,
        reason: 'unknown_client',
      });

      clock.advance(60_000);
      const rotated = await rotateClientSecret(ctx, client_id, ACTOR);
      assert.equal(rotated.client_id, client_id);
      assert.deepEqual(await verifyClientCredentials(ctx, client_id, client_secret), {
        ok: false,
        reason: 'bad_secret',
      });
      const afterRotation = await verifyClientCredentials(ctx, client_id, rotated.client_secret);
      assert.ok(afterRotation.ok);
      assert.equal(afterRotation.client.secret_rotated_at, clock.now().toISOString());
      assert.ok(afterRotation.client.secret_rotated_at > afterRotation.client.created_at);

      await disableClient(ctx, client_id, ACTOR);
      assert.deepEqual(await verifyClientCredentials(ctx, client_id, rotated.client_secret), {
        ok: false,
        reason: 'disabled',
      });
      assert.equal((await fetchClient(ctx, client_id))?.status, 'disabled');
      assert.deepEqual(
        (
          await ctx
            .knex('hub_audit')
            .where({ target: client_id })
            .orderBy('id')
            .select<Array<{ action: string }>>('action')
        ).map((r) => r.action),
        ['client.create', 'client.rotate', 'client.disable'],
      );
      await assert.rejects(disableClient(ctx, 'cspd-ffffffff', ACTOR), isHubError('unknown_client', 404));
      await assert.rejects(
        rotateClientSecret(ctx, 'cspd-ffffffff', ACTOR),
        isHubError('unknown_client', 404),
      );
    });

    it('lists clients by entity', async () => {
      const all = await fetchClients(ctx);
      assert.ok(all.length >= 2);
      assert.ok((await fetchClients(ctx, { entity: 'CSPD' })).every((c) => c.entity === 'CSPD'));
    });
  });

  describe('users', () => {
    it('creates a user with a random password and a TOTP URI, storing neither in plain text', async () => {
      const user = await createUser(
        ctx,
        { username: 'amal.custodian', entity: 'CSPD', role: 'custodian' },
        ACTOR,
      );
      assert.equal(user.username, 'amal.custodian');
      assert.ok(user.password.length >= 20);
      const uri = new URL(user.otpauth_uri);
      assert.equal(uri.protocol, 'otpauth:');
      assert.equal(uri.searchParams.get('issuer'), 'Registry Hub');
      assert.match(decodeURIComponent(uri.pathname), /Registry Hub:amal\.custodian$/);

      const stored = await ctx
        .knex('hub_users')
        .where({ username: 'amal.custodian' })
        .first<Record<string, unknown>>();
      assert.ok(!Object.values(stored).some((v) => String(v).includes(user.password)));
      assert.deepEqual([stored.entity, stored.role, stored.status], ['CSPD', 'custodian', 'active']);
    });

    it('refuses duplicates, bad usernames, roles and entities', async () => {
      await createUser(ctx, { username: 'huda.custodian', entity: 'CSPD', role: 'custodian' }, ACTOR);
      const before = await countRows('hub_users');
      await assert.rejects(
        createUser(ctx, { username: 'huda.custodian', entity: 'NAF', role: 'entity-admin' }, ACTOR),
        isHubError('user_exists', 409),
      );
      await assert.rejects(
        createUser(ctx, { username: 'Amal', entity: 'CSPD', role: 'custodian' }, ACTOR),
        /username: must match/,
      );
      await assert.rejects(
        createUser(ctx, { username: 'ab', entity: 'CSPD', role: 'custodian' }, ACTOR),
        isHubError('invalid_request', 400),
      );
      await assert.rejects(
        createUser(ctx, { username: 'omar', entity: 'CSPD', role: 'root' }, ACTOR),
        /role: must be one of super-admin, custodian, entity-admin/,
      );
      await assert.rejects(
        createUser(ctx, { username: 'omar', entity: 'XYZ', role: 'custodian' }, ACTOR),
        isHubError('unknown_entity', 404),
      );
      assert.equal(await countRows('hub_users'), before);
    });

    it('signs in with the password and a real one-time code, and audits it without secrets', async () => {
      const user = await createUser(
        ctx,
        { username: 'nour.admin', entity: 'NAF', role: 'entity-admin' },
        ACTOR,
      );
      const secret = readSecretFromUri(user.otpauth_uri);
      const signedIn = await verifyUserLogin(ctx, 'nour.admin', user.password, await codeAt(secret));
      assert.deepEqual(signedIn, {
        username: 'nour.admin',
        entity: 'NAF',
        role: 'entity-admin',
        status: 'active',
        created_at: clock.now().toISOString(),
      });

      await assert.rejects(
        verifyUserLogin(ctx, 'nour.admin', 'wrong', await codeAt(secret)),
        isHubError('invalid_login', 401),
      );
      await assert.rejects(
        verifyUserLogin(ctx, 'nour.admin', user.password, '000000x'),
        isHubError('invalid_login', 401),
      );
      await assert.rejects(
        verifyUserLogin(ctx, 'nobody.here', user.password, '123456'),
        isHubError('invalid_login', 401),
      );

      const logins = await ctx
        .knex('hub_audit')
        .where({ action: 'login' })
        .whereIn('actor', ['nour.admin', 'nobody.here'])
        .orderBy('id')
        .select<Array<{ actor: string; details: string }>>('actor', 'details');
      assert.deepEqual(
        logins.map((r) => [r.actor, JSON.parse(r.details) as unknown]),
        [
          ['nour.admin', { outcome: 'success' }],
          ['nour.admin', { outcome: 'failure', reason: 'bad_password' }],
          ['nour.admin', { outcome: 'failure', reason: 'bad_code' }],
          ['nobody.here', { outcome: 'failure', reason: 'unknown_user' }],
        ],
      );
      assert.ok(logins.every((r) => !r.details.includes(user.password)));
    });

    it('locks the account for 15 minutes after 5 failures, even for the right password, then lets it in', async () => {
      const user = await createUser(ctx, { username: 'sami.ops', entity: 'NAF', role: 'super-admin' }, ACTOR);
      const secret = readSecretFromUri(user.otpauth_uri);
      for (let i = 0; i < 5; i += 1) {
        await assert.rejects(
          verifyUserLogin(ctx, 'sami.ops', `guess-${i}`, await codeAt(secret)),
          /invalid username, password or one-time code/,
        );
      }
      await assert.rejects(
        verifyUserLogin(ctx, 'sami.ops', user.password, await codeAt(secret)),
        // A locked account answers exactly like a wrong password or an unknown user.
        isHubError('invalid_login', 401, /^invalid username, password or one-time code/),
      );
      clock.advance(LOCKOUT_MS - 1000);
      await assert.rejects(
        verifyUserLogin(ctx, 'sami.ops', user.password, await codeAt(secret)),
        /invalid username, password or one-time code/,
      );
      clock.advance(1000);
      assert.equal(
        (await verifyUserLogin(ctx, 'sami.ops', user.password, await codeAt(secret))).username,
        'sami.ops',
      );

      const reasons = await ctx
        .knex('hub_audit')
        .where({ action: 'login', actor: 'sami.ops' })
        .orderBy('id')
        .select<Array<{ details: string }>>('details');
      const outcomes = reasons.map(
        (r) => JSON.parse(r.details) as { outcome: string; reason?: string; locked_until?: string },
      );
      assert.deepEqual(
        outcomes.map((o) => o.reason ?? o.outcome),
        [
          'bad_password',
          'bad_password',
          'bad_password',
          'bad_password',
          'bad_password',
          'locked',
          'locked',
          'success',
        ],
      );
      assert.equal(outcomes[4]?.locked_until, '2026-02-01T08:16:00.000Z');
      assert.deepEqual(
        await ctx.knex('hub_users').where({ username: 'sami.ops' }).first('failed_logins', 'locked_until'),
        { failed_logins: 0, locked_until: null },
      );
    });

    it('leaves a verifiable audit chain behind', async () => {
      assert.equal((await verifyAuditChain(ctx.knex)).ok, true);
    });
  });
});
