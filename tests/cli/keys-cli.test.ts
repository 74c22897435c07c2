import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { generate } from 'otplib';
import { closeContext, type AppContext } from '../../server/context.ts';
import { createUser, verifyUserLogin } from '../../server/services/user-service.ts';
import { migrateWarehouse } from '../../warehouse/migrations/migrate.ts';
import { createTempDir, testDatabases } from '../support/databases.ts';
import { insertEntities, openTestContext } from '../support/hub-context.ts';
import { runHubCli } from '../support/run-hub-cli.ts';

const KEY = 'an-operator-chosen-key-of-44-characters-long';

describe('hub keys and hub users reset-totp', () => {
  let dir: string;

  beforeEach(async () => {
    dir = await createTempDir('hub-keys-cli-');
  });

  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('rotate creates the file HUB_SECRET_KEY_FILE names, with mode 0600; list shows key ids, never keys', async () => {
    const file = path.join(dir, 'keys', 'hub-keys.json');
    const env = { HUB_SECRET_KEY_FILE: file };
    const rotated = await runHubCli(['keys', 'rotate'], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const kid = /^new current key ([a-z0-9]{12}) in /.exec(rotated.stdout)?.[1];
    assert.ok(kid !== undefined, rotated.stdout);
    assert.equal(statSync(file).mode & 0o777, 0o600);

    const listed = await runHubCli(['keys', 'list'], env);
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${kid}\\s+current\\s+created \\S+\\s+retired -$`, 'm'));
    const stored = (JSON.parse(readFileSync(file, 'utf8')) as { keys: Array<{ key: string }> }).keys[0]!.key;
    assert.ok(!listed.stdout.includes(stored));
  });

  it('answers bad key configuration with one hub: line and exit 1, never printing a key', async () => {
    const file = path.join(dir, 'hub-keys.json');
    const cases: Array<[NodeJS.ProcessEnv, string[], RegExp]> = [
      [
        { HUB_SECRET_KEY_FILE: file },
        ['keys', 'list'],
        /^hub: no key file at .*hub-keys\.json: create one with hub keys rotate/,
      ],
      [
        { HUB_SECRET_KEY: 'too-short' },
        ['keys', 'list'],
        /^hub: invalid configuration: HUB_SECRET_KEY: each key needs at least 32 characters/,
      ],
      [
        { HUB_SECRET_KEY: KEY, HUB_SECRET_KEY_FILE: file },
        ['keys', 'list'],
        /^hub: invalid configuration: set HUB_SECRET_KEY_FILE or HUB_SECRET_KEY, not both/,
      ],
      [{ HUB_SECRET_KEY: KEY }, ['keys', 'rotate'], /^hub: the keys come from HUB_SECRET_KEY, not a file/],
    ];
    for (const [env, args, message] of cases) {
      const result = await runHubCli(args, env);
      assert.equal(result.code, 1, `${args.join(' ')}: ${result.stdout}${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.ok(!result.stderr.includes(KEY) && !result.stdout.includes(KEY));
    }
    assert.equal(existsSync(file), false, 'a mistyped key file path is not created by list');

    writeFileSync(file, '{"format": "registry-hub-keys/1", "keys": [', { mode: 0o600 });
    const corrupt = await runHubCli(['keys', 'rotate'], { HUB_SECRET_KEY_FILE: file });
    assert.equal(corrupt.code, 1);
    assert.match(corrupt.stderr, /^hub: key file .*hub-keys\.json: not JSON$/m);
  });

  for (const database of testDatabases) {
    it(`users reset-totp gives a new authenticator and refuses an unknown user [${database.name}]`, async () => {
      const url = await database.createUrl();
      let ctx: AppContext | undefined;
      try {
        ctx = openTestContext(url, dir);
        await migrateWarehouse(ctx.knex);
        await insertEntities(ctx, 'NAF');
        const user = await createUser(
          ctx,
          { username: 'lost.phone', entity: 'NAF', role: 'custodian' },
          'test',
        );
        const env = { HUB_DATA_DIR: dir };

        const reset = await runHubCli(['users', 'reset-totp', 'lost.phone', '--db', url], env);
        assert.equal(reset.code, 0, reset.stderr);
        const uri = /^otpauth: (otpauth:\/\/totp\/\S+)$/m.exec(reset.stdout)?.[1] ?? '';
        const secret = new URL(uri).searchParams.get('secret') ?? '';
        assert.notEqual(secret, new URL(user.otpauth_uri).searchParams.get('secret'));
        const signedIn = await verifyUserLogin(ctx, 'lost.phone', user.password, await generate({ secret }));
        assert.equal(signedIn.username, 'lost.phone');

        const unknown = await runHubCli(['users', 'reset-totp', 'no.such.user', '--db', url], env);
        assert.equal(unknown.code, 1);
        assert.match(unknown.stderr, /^hub: no user "no\.such\.user"$/m);
      } finally {
        if (ctx !== undefined) await closeContext(ctx);
        await database.dropUrl(url);
      }
    });
  }
});
