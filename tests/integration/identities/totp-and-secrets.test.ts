import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { generate } from 'otplib';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { createClient, verifyClientCredentials } from '../../../server/services/client-service.ts';
import { hashSecret } from '../../../server/services/password-hash.ts';
import {
  createUser,
  resetUserTotp,
  verifyUserCode,
  verifyUserLogin,
  verifyUserPassword,
  type NewUser,
} from '../../../server/services/user-service.ts';
import { openWarehouse, closeWarehouse } from '../../../warehouse/db.ts';
import * as hubTables from '../../../warehouse/migrations/001-hub-tables.ts';
import * as access from '../../../warehouse/migrations/002-access.ts';
import * as settings from '../../../warehouse/migrations/003-settings.ts';
import * as keysOutOfWarehouse from '../../../warehouse/migrations/005-keys-out-of-warehouse.ts';
import { migrateWarehouse } from '../../../warehouse/migrations/migrate.ts';
import { createTempDir, describeEachDatabase, testDatabases } from '../../support/databases.ts';
import { createManualClock, insertEntities, openTestContext } from '../../support/hub-context.ts';
import { isHubError } from '../../support/hub-errors.ts';

const ACTOR = 'test:admin';
const STEP_MS = 30_000;

const isInvalidLogin = isHubError('invalid_login', 401);
const readSecretFromUri = (uri: string) => new URL(uri).searchParams.get('secret') ?? '';

describeEachDatabase('TOTP secrets sealed and accepted once; client secrets as HMAC', (db) => {
  let dir: string;
  let ctx: AppContext;
  const clock = createManualClock('2026-02-01T08:00:00.000Z');
  const codeAt = (user: NewUser, offsetSteps = 0) =>
    generate({
      secret: readSecretFromUri(user.otpauth_uri),
      epoch: Math.floor((clock.now().getTime() + offsetSteps * STEP_MS) / 1000),
    });
  const loginReasons = async (username: string) =>
    (
      await ctx
        .knex('hub_audit')
        .where({ action: 'login', actor: username })
        .orderBy('id')
        .select<Array<{ details: string }>>('details')
    ).map((r) => {
      const details = JSON.parse(r.details) as { outcome: string; reason?: string };
      return details.reason ?? details.outcome;
    });
  const storedTotp = async (username: string) =>
    (await ctx.knex('hub_users').where({ username }).first<{ totp_secret: string }>('totp_secret'))
      .totp_secret;

  before(async () => {
    dir = await createTempDir('hub-totp-');
    ctx = openTestContext(db.url(), dir, { clock });
    await migrateWarehouse(ctx.knex);
    await insertEntities(ctx, 'NAF');
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  it('stores the TOTP secret sealed under the current key, and accepts each code once', async () => {
    const user = await createUser(ctx, { username: 'once.only', entity: 'NAF', role: 'entity-admin' }, ACTOR);
    const sealed = await storedTotp('once.only');
    assert.match(sealed, new RegExp(`^${ctx.keyring.currentKid()}\\.[\\w-]{16}\\.[\\w-]+$`));
    assert.ok(!sealed.includes(readSecretFromUri(user.otpauth_uri)));

    const code = await codeAt(user);
    await verifyUserLogin(ctx, 'once.only', user.password, code);
    // The same code again, as an eavesdropper would replay it, inside its 30 seconds.
    clock.advance(5_000);
    await assert.rejects(verifyUserLogin(ctx, 'once.only', user.password, code), isInvalidLogin);
    // The next step's code works once; the one before it (still within the drift tolerance) no longer does.
    clock.advance(STEP_MS);
    await verifyUserLogin(ctx, 'once.only', user.password, await codeAt(user));
    await assert.rejects(
      verifyUserLogin(ctx, 'once.only', user.password, await codeAt(user, -1)),
      isInvalidLogin,
    );
    assert.deepEqual(await loginReasons('once.only'), ['success', 'code_reused', 'success', 'code_reused']);
  });

  it('signs in in two steps, password then code, with one lockout count across both', async () => {
    const user = await createUser(ctx, { username: 'two.steps', entity: 'NAF', role: 'custodian' }, ACTOR);
    await assert.rejects(verifyUserPassword(ctx, 'two.steps', 'wrong'), isInvalidLogin);
    assert.equal((await verifyUserPassword(ctx, 'two.steps', user.password)).username, 'two.steps');
    await assert.rejects(verifyUserCode(ctx, 'two.steps', '000000'), isInvalidLogin);
    const signedIn = await verifyUserCode(ctx, 'two.steps', await codeAt(user));
    assert.deepEqual([signedIn.username, signedIn.role], ['two.steps', 'custodian']);
    await assert.rejects(verifyUserCode(ctx, 'two.steps', await codeAt(user)), isInvalidLogin);
    assert.deepEqual(await loginReasons('two.steps'), ['bad_password', 'bad_code', 'success', 'code_reused']);
    assert.deepEqual(
      await ctx.knex('hub_users').where({ username: 'two.steps' }).first('failed_logins'),
      { failed_logins: 1 },
      'the success cleared the count; the replay after it counts',
    );
  });

  it("does not open a sealed secret copied into another user's row", async () => {
    const victim = await createUser(
      ctx,
      { username: 'copy.victim', entity: 'NAF', role: 'custodian' },
      ACTOR,
    );
    const intruder = await createUser(
      ctx,
      { username: 'copy.intruder', entity: 'NAF', role: 'custodian' },
      ACTOR,
    );
    await ctx
      .knex('hub_users')
      .where({ username: 'copy.intruder' })
      .update({ totp_secret: await storedTotp('copy.victim') });
    clock.advance(STEP_MS);
    await assert.rejects(
      verifyUserLogin(ctx, 'copy.intruder', intruder.password, await codeAt(victim)),
      isInvalidLogin,
    );
    assert.deepEqual(await loginReasons('copy.intruder'), ['totp_unreadable']);
  });

  it('refuses a user without an authenticator (cleared by the upgrade) until reset-totp, and the old authenticator after it', async () => {
    const user = await createUser(ctx, { username: 'cleared.user', entity: 'NAF', role: 'custodian' }, ACTOR);
    await ctx.knex('hub_users').where({ username: 'cleared.user' }).update({ totp_secret: '' });
    clock.advance(STEP_MS);
    await assert.rejects(
      verifyUserLogin(ctx, 'cleared.user', user.password, await codeAt(user)),
      isInvalidLogin,
    );

    const enrolled = await resetUserTotp(ctx, 'cleared.user', ACTOR);
    assert.notEqual(readSecretFromUri(enrolled.otpauth_uri), readSecretFromUri(user.otpauth_uri));
    await assert.rejects(
      verifyUserLogin(ctx, 'cleared.user', user.password, await codeAt(user)),
      isInvalidLogin,
    );
    const code = await generate({
      secret: readSecretFromUri(enrolled.otpauth_uri),
      epoch: Math.floor(clock.now().getTime() / 1000),
    });
    assert.equal((await verifyUserLogin(ctx, 'cleared.user', user.password, code)).username, 'cleared.user');
    assert.deepEqual(await loginReasons('cleared.user'), ['totp_not_enrolled', 'bad_code', 'success']);
    await assert.rejects(resetUserTotp(ctx, 'nobody.here', ACTOR), isHubError('unknown_user'));
    const resets = await ctx
      .knex('hub_audit')
      .where({ action: 'user.totp_reset', target: 'cleared.user' })
      .select('actor');
    assert.deepEqual(resets, [{ actor: ACTOR }]);
  });

  it('still accepts a client secret hashed with scrypt before the upgrade, once, and stores it as an HMAC', async () => {
    const credentials = await createClient(ctx, { entity: 'NAF' }, ACTOR);
    await ctx
      .knex('hub_clients')
      .where({ client_id: credentials.client_id })
      .update({ secret_hash: await hashSecret(credentials.client_secret) });
    assert.deepEqual(await verifyClientCredentials(ctx, credentials.client_id, 'wrong'), {
      ok: false,
      reason: 'bad_secret',
    });
    assert.equal(
      (await verifyClientCredentials(ctx, credentials.client_id, credentials.client_secret)).ok,
      true,
    );
    const stored = await ctx
      .knex('hub_clients')
      .where({ client_id: credentials.client_id })
      .first<{ secret_hash: string }>('secret_hash');
    assert.match(stored.secret_hash, new RegExp(`^hmac-sha256\\$${ctx.keyring.currentKid()}\\$`));
    assert.equal(
      (await verifyClientCredentials(ctx, credentials.client_id, credentials.client_secret)).ok,
      true,
    );
  });
});

for (const database of testDatabases) {
  describe(`Migration 005 takes the keys out of an existing warehouse [${database.name}]`, () => {
    it('deletes the stored token signing key and the plain-text TOTP secrets, and makes room for sealed ones', async () => {
      const url = await database.createUrl();
      const warehouse = openWarehouse(url);
      try {
        const { knex } = warehouse;
        for (const migration of [hubTables, access, settings]) await migration.up(knex);
        await knex('hub_users').insert({
          username: 'old.user',
          entity: 'NAF',
          role: 'custodian',
          password_hash: 'scrypt$x',
          totp_secret: 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP',
          status: 'active',
          failed_logins: 0,
          created_at: '2026-01-01T00:00:00.000Z',
        });
        assert.equal(
          (await knex('hub_settings').where({ name: 'token_signing_key' }).select('name')).length,
          1,
        );

        await keysOutOfWarehouse.up(knex);
        assert.deepEqual(await knex('hub_settings').where({ name: 'token_signing_key' }).select('name'), []);
        assert.deepEqual(await knex('hub_users').select('username', 'totp_secret', 'totp_last_step'), [
          { username: 'old.user', totp_secret: '', totp_last_step: null },
        ]);
        // Sealed values are longer than the plain secrets the column was sized for.
        await knex('hub_users')
          .where({ username: 'old.user' })
          .update({ totp_secret: 'x'.repeat(200) });
        assert.deepEqual(await knex('hub_token_failures').select('subject'), []);
      } finally {
        await closeWarehouse(warehouse);
        await database.dropUrl(url);
      }
    });
  });
}
