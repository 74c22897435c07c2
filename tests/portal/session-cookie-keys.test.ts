import assert from 'node:assert/strict';
import { startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { createPortalUser, signIn, type PortalUser } from '../support/portal-client.ts';
import { runHubCli } from '../support/run-hub-cli.ts';

describeEachDatabase('Portal session cookies under key rotation', (db) => {
  let hub: ApiHub;
  let user: PortalUser;

  const hubCli = (...args: string[]) => runHubCli(args, { HUB_DATA_DIR: hub.dir });
  const openHome = (cookie: string) =>
    fetch(`${hub.baseUrl}/`, { headers: { cookie: `hub.sid=${cookie}` }, redirect: 'manual' });

  before(async () => {
    hub = await startApiHub(db.url());
    user = await createPortalUser(hub, 'rotation.watcher', 'REG', 'super-admin');
  });
  after(() => hub.close());

  it('keeps no cookie key in the warehouse', async () => {
    const settings = await hub.ctx.knex('hub_settings').pluck<string[]>('name');
    assert.ok(!settings.some((name) => /cookie|session/.test(name)), settings.join(', '));
  });

  it('keeps people signed in across hub keys rotate, and ends cookies signed under a key hub keys prune removes', async () => {
    const client = await signIn(hub, user);
    const oldCookie = client.cookie('hub.sid')!;

    const rotated = await hubCli('keys', 'rotate');
    assert.equal(rotated.code, 0, rotated.stderr);
    const afterRotate = await client.get('/');
    assert.equal(afterRotate.status, 200, 'a cookie signed before the rotation still opens the session');
    assert.match(afterRotate.text, /rotation\.watcher/);
    const newCookie = client.cookie('hub.sid')!;
    assert.notEqual(newCookie, oldCookie, 'the answer re-signs the cookie with the new key');
    assert.equal(newCookie.split('.')[0], oldCookie.split('.')[0], 'the same session');

    const pruned = await hubCli('keys', 'prune', '--all', '--db', db.url());
    assert.equal(pruned.code, 0, pruned.stderr);
    const old = await openHome(oldCookie);
    assert.equal(old.status, 303);
    assert.equal(old.headers.get('location'), '/login', 'the old key no longer signs anyone in');
    assert.equal((await openHome(newCookie)).status, 200, 'the re-signed cookie still works');
  });

  it('refuses a cookie for a live session whose signature was not made with a key on the keyring', async () => {
    const client = await signIn(hub, user);
    const [sid] = client.cookie('hub.sid')!.split('.');
    const forged = `${sid}.${'A'.repeat(43)}`;
    const res = await openHome(forged);
    assert.equal(res.status, 303);
    assert.equal(res.headers.get('location'), '/login');
    assert.equal((await client.get('/')).status, 200, 'the real cookie still works');
  });
});
