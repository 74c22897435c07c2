import assert from 'node:assert/strict';
import type { Knex } from 'knex';
import { startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase, type DatabaseName } from '../support/databases.ts';
import { refuseWrites } from '../support/refuse-writes.ts';
import {
  createPortalUser,
  generateCode,
  PortalClient,
  signIn,
  type PortalUser,
} from '../support/portal-client.ts';

const TOTP_STEP_MS = 30_000;

/** Every write to hub_sessions fails inside the database, while reads still work. */
const refuseSessionWrites = (knex: Knex, db: DatabaseName) =>
  refuseWrites(knex, db, 'hub_sessions', ['INSERT', 'UPDATE'], 'session writes refused by the test');

/** What a browser does with a redirect: it asks for the next page as soon as the head arrives, without waiting for the body. */
async function followOnHead(
  baseUrl: string,
  method: string,
  path: string,
  cookie: string,
  form?: Record<string, string>,
): Promise<{ location: string | null; cookie: string; next: Response }> {
  const first = await fetch(`${baseUrl}${path}`, {
    method,
    headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
    body: form === undefined ? undefined : new URLSearchParams(form),
    redirect: 'manual',
  });
  const set = first.headers
    .getSetCookie()
    .map((c) => c.split(';')[0]!)
    .find((c) => c.startsWith('hub.sid='));
  const nextCookie = set ?? cookie;
  const location = first.headers.get('location');
  const next = await fetch(`${baseUrl}${location ?? path}`, {
    headers: { cookie: nextCookie },
    redirect: 'manual',
  });
  await first.text();
  return { location, cookie: nextCookie, next };
}

describeEachDatabase('Portal sessions are written before the answer leaves', (db) => {
  let hub: ApiHub;
  let user: PortalUser;

  before(async () => {
    hub = await startApiHub(db.url());
    user = await createPortalUser(hub, 'session.keeper', 'REG', 'super-admin');
  });
  after(() => hub.close());

  it('answers a request whose session cannot be saved once, with an error page, and serves on when the database recovers', async () => {
    const client = await signIn(hub, user);
    const allowSessionWrites = await refuseSessionWrites(hub.ctx.knex, db.name);
    let home;
    try {
      // The idle expiry moves at every request: that write fails here.
      home = await client.get('/');
    } finally {
      await allowSessionWrites();
    }
    assert.equal(home.status, 500, 'not the home page of a session whose expiry did not move');
    assert.match(home.text, /internal error \(request [0-9a-f-]+\)/);
    assert.doesNotMatch(home.text, /session\.keeper.*session\.keeper/s, 'no dashboard in the answer');
    const again = await client.get('/');
    assert.equal(again.status, 200, 'the same session serves again once writes work');
    assert.match(again.text, /session\.keeper/);
  });

  it('refuses a sign-in whose new session cannot be saved, instead of sending the browser on to a session that does not exist', async () => {
    const client = new PortalClient(hub.baseUrl);
    await client.get('/login');
    const allowSessionWrites = await refuseSessionWrites(hub.ctx.knex, db.name);
    let res;
    try {
      res = await client.post('/login', { username: user.username, password: user.password });
    } finally {
      await allowSessionWrites();
    }
    assert.equal(res.status, 500);
    assert.equal(res.location, null, 'not sent on to /login/code');
    assert.match(res.text, /internal error/);
  });

  it('lets a browser that follows each redirect on its head sign in: the session exists before the redirect is sent', async () => {
    for (let attempt = 0; attempt < 5; attempt += 1) {
      const client = new PortalClient(hub.baseUrl);
      await client.get('/login');
      const cookie = `hub.sid=${client.cookie('hub.sid')}`;
      const afterPassword = await followOnHead(hub.baseUrl, 'POST', '/login', cookie, {
        username: user.username,
        password: user.password,
        _csrf: client.csrfToken!,
      });
      assert.equal(afterPassword.location, '/login/code');
      const codePage = await afterPassword.next.text();
      assert.equal(
        afterPassword.next.status,
        200,
        `attempt ${attempt}: sent back to ${afterPassword.next.headers.get('location')}`,
      );
      const csrf = /name="_csrf" value="([^"]+)"/.exec(codePage)![1]!;

      hub.clock.advance(TOTP_STEP_MS);
      const afterCode = await followOnHead(hub.baseUrl, 'POST', '/login/code', afterPassword.cookie, {
        code: await generateCode(hub, user),
        _csrf: csrf,
      });
      assert.equal(afterCode.location, '/');
      assert.equal(afterCode.next.status, 200, `attempt ${attempt}: home answered ${afterCode.next.status}`);
      assert.match(await afterCode.next.text(), /session\.keeper/);
    }
  });
});
