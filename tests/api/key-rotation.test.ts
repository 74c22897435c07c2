import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { decodeProtectedHeader } from 'jose';
import { generate } from 'otplib';
import type { ClientCredentials } from '../../server/services/client-service.ts';
import { TOKEN_TTL_SECONDS } from '../../server/services/token-service.ts';
import { createUser, verifyUserLogin, type NewUser } from '../../server/services/user-service.ts';
import { assertApiError, assertOAuthError, PERSON, startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { runHubCli } from '../support/run-hub-cli.ts';

const kidOf = (token: string) => String(decodeProtectedHeader(token).kid);
const readSecretFromUri = (uri: string) => new URL(uri).searchParams.get('secret') ?? '';

describeEachDatabase(
  'Key rotation: old tokens verify until they expire, removed keys verify nothing',
  (db) => {
    let hub: ApiHub;
    let keyFile: string;
    let first: ClientCredentials;
    let idle: ClientCredentials;
    let user: NewUser;
    let oldKid: string;
    let newKid: string;
    let oldToken: string;
    /** Also under the old key, issued ten minutes later: still live when oldToken has expired. */
    let lateOldToken: string;
    let newToken: string;

    const hubCli = (...args: string[]) => runHubCli(args, { HUB_DATA_DIR: hub.dir });
    const lookup = (token: string) => hub.call('GET', `/api/v1/persons/${PERSON.mohammad}`, { token });
    const signIn = async () => {
      const code = await generate({
        secret: readSecretFromUri(user.otpauth_uri),
        epoch: Math.floor(hub.clock.now().getTime() / 1000),
      });
      return verifyUserLogin(hub.ctx, user.username, user.password, code);
    };
    const storedHash = async (clientId: string) =>
      (
        await hub.ctx
          .knex('hub_clients')
          .where({ client_id: clientId })
          .first<{ secret_hash: string }>('secret_hash')
      ).secret_hash;

    before(async () => {
      hub = await startApiHub(db.url());
      keyFile = path.join(hub.dir, 'secret-keys.json');
      first = await hub.createClient('REG');
      idle = await hub.createClient('REG');
      user = await createUser(hub.ctx, { username: 'rota.admin', entity: 'REG', role: 'custodian' }, 'test');
      oldToken = await hub.fetchToken(first);
      oldKid = kidOf(oldToken);
      hub.clock.advance(600_000);
      lateOldToken = await hub.fetchToken(first);
    });

    after(async () => {
      await hub?.close();
    });

    it('keeps its first key in a file of the data folder that only the hub account may read', async () => {
      assert.equal(oldKid, hub.ctx.keyring.currentKid());
      assert.equal((await stat(keyFile)).mode & 0o777, 0o600);
    });

    it('after hub keys rotate, signs with the new key while tokens of the old one still work', async () => {
      const rotated = await hubCli('keys', 'rotate');
      assert.equal(rotated.code, 0, rotated.stderr);
      newKid = /^new current key ([a-z0-9]{12}) in /.exec(rotated.stdout)?.[1] ?? '';
      assert.notEqual(newKid, '');
      assert.notEqual(newKid, oldKid);
      assert.match(rotated.stdout, new RegExp(`kept to verify: ${oldKid}`));

      assert.equal((await lookup(oldToken)).status, 200);
      newToken = await hub.fetchToken(first);
      assert.equal(kidOf(newToken), newKid);
      assert.equal((await lookup(newToken)).status, 200);
      // The secret, now at hand, was hashed again under the new key.
      assert.match(await storedHash(first.client_id), new RegExp(`^hmac-sha256\\$${newKid}\\$`));
      assert.match(await storedHash(idle.client_id), new RegExp(`^hmac-sha256\\$${oldKid}\\$`));
      // A TOTP secret sealed under the old key still opens.
      assert.equal((await signIn()).username, user.username);
    });

    it('an old token still expires at its own time', async () => {
      hub.clock.advance((TOKEN_TTL_SECONDS - 600 - 1) * 1000);
      assert.equal((await lookup(oldToken)).status, 200);
      hub.clock.advance(2000);
      assertApiError(await lookup(oldToken), 401, 'invalid_token', /expired/);
      assert.equal((await lookup(lateOldToken)).status, 200);
    });

    it('hub keys prune moves TOTP secrets to the new key and keeps a key whose tokens may still be live', async () => {
      const pruned = await hubCli('keys', 'prune', '--db', db.url());
      assert.equal(pruned.code, 0, pruned.stderr);
      assert.match(pruned.stdout, new RegExp(`TOTP secrets moved to key ${newKid}: 1`));
      assert.match(pruned.stdout, /no key to remove/);
      const sealed = await hub.ctx
        .knex('hub_users')
        .where({ username: user.username })
        .first<{ totp_secret: string }>('totp_secret');
      assert.ok(sealed.totp_secret.startsWith(`${newKid}.`), sealed.totp_secret);
      assert.equal((await lookup(lateOldToken)).status, 200);
    });

    it('refuses to remove a key that still checks a client secret, naming the client', async () => {
      const refused = await hubCli('keys', 'prune', '--all', '--db', db.url());
      assert.equal(refused.code, 1);
      assert.match(refused.stderr, new RegExp(`^hub: not removed: .*${idle.client_id} \\(${oldKid}\\)`, 'm'));
      assert.equal((await lookup(lateOldToken)).status, 200);
    });

    it('after the last client moved and hub keys prune --all, tokens under the removed key are refused at once', async () => {
      await hub.fetchToken(idle);
      assert.match(await storedHash(idle.client_id), new RegExp(`^hmac-sha256\\$${newKid}\\$`));
      const pruned = await hubCli('keys', 'prune', '--all', '--db', db.url());
      assert.equal(pruned.code, 0, pruned.stderr);
      assert.match(pruned.stdout, new RegExp(`removed: ${oldKid}`));

      assertApiError(await lookup(lateOldToken), 401, 'invalid_token', /key the hub no longer holds/);
      assert.equal((await lookup(newToken)).status, 200);
      assert.equal(hub.ctx.keyring.findSecretKey('api-token', oldKid), null);
      // Clients and users carry on under the new key.
      assert.equal((await lookup(await hub.fetchToken(first))).status, 200);
      hub.clock.advance(30_000);
      assert.equal((await signIn()).username, user.username);

      const listed = JSON.parse((await hubCli('keys', 'list', '--json')).stdout) as Array<{
        kid: string;
        current: boolean;
      }>;
      assert.deepEqual(
        listed.map((k) => [k.kid, k.current]),
        [[newKid, true]],
      );
    });

    it('with --force removes a key even though a client secret is hashed under it: that client is refused', async () => {
      const stranded = await hub.createClient('REG');
      assert.equal((await hubCli('keys', 'rotate')).code, 0);
      // This client moves to the newest key with its next token; the stranded one never asks.
      await hub.fetchToken(first);
      const forced = await hubCli('keys', 'prune', '--all', '--force', '--db', db.url());
      assert.equal(forced.code, 0, forced.stderr);
      assertOAuthError(
        await hub.call('POST', '/api/v1/token', { json: { grant_type: 'client_credentials', ...stranded } }),
        401,
        'invalid_client',
      );
      assert.equal((await lookup(await hub.fetchToken(first))).status, 200);
      // The prune moved the TOTP secret before removing its key.
      hub.clock.advance(30_000);
      assert.equal((await signIn()).username, user.username);
    });
  },
);
