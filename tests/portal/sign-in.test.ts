import { createServer } from 'node:http';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { buildApp } from '../../server/app.ts';
import { closeContext } from '../../server/context.ts';
import { startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { openTestContext } from '../support/hub-context.ts';
import {
  createPortalUser,
  generateCode,
  PortalClient,
  signIn,
  type PortalUser,
} from '../support/portal-client.ts';

const MINUTE = 60_000;
const FAILURE_MESSAGE = /Sign-in failed: the username, password or code is wrong, or the account is locked/;
const PORTAL_PAGES = [
  '/',
  '/privileges/tables',
  '/privileges/columns/reg_people',
  '/queries/builder',
  '/queries',
  '/settings/entities',
  '/settings/users',
  '/settings/clients',
  '/settings/connectors',
  '/audit',
];

describeEachDatabase('Portal sign-in: password, one-time code, lockout, sessions, CSRF', (db) => {
  let hub: ApiHub;
  let admin: PortalUser;

  const auditActions = async (actor: string) =>
    (
      await hub.ctx
        .knex('hub_audit')
        .where({ actor })
        .orderBy('id')
        .select<Array<{ action: string; details: string }>>('action', 'details')
    ).map((r) => ({
      action: r.action,
      details: JSON.parse(r.details) as Record<string, unknown>,
    }));

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name']);
    admin = await createPortalUser(hub, 'hub.admin', 'NAF', 'super-admin');
  });
  after(() => hub.close());

  it('sends every portal page to /login without a session, a form post included, and keeps /healthz public', async () => {
    const visitor = new PortalClient(hub.baseUrl);
    for (const page of PORTAL_PAGES) {
      const res = await visitor.get(page);
      assert.equal(res.status, 303, page);
      assert.equal(res.location, '/login', page);
    }
    const post = await visitor.post('/privileges/tables', { grant: 'NAF:reg_people' });
    assert.equal(post.location, '/login');
    assert.equal((await visitor.get('/healthz')).status, 200);
  });

  it('shows a first-time user a QR code drawn by the hub and asks for a code before any session exists', async () => {
    const user = await createPortalUser(hub, 'first.timer', 'NAF', 'entity-admin');
    const client = new PortalClient(hub.baseUrl);
    await client.get('/login');
    const afterPassword = await client.post('/login', { username: user.username, password: user.password });
    assert.equal(afterPassword.location, '/login/code');
    assert.equal((await client.get('/')).location, '/login', 'a right password alone is not a session');
    const codePage = await client.get('/login/code');
    assert.match(codePage.text, /<svg[^>]*>/);
    assert.match(codePage.text, /otpauth:\/\/totp\//);
    assert.doesNotMatch(codePage.text, /https?:\/\/(?!www\.w3\.org)[^"]*qr/i, 'no outside QR service');
    const afterCode = await client.post('/login/code', { code: await generateCode(hub, user) });
    assert.equal(afterCode.location, '/');
    assert.equal((await client.get('/')).status, 200);

    hub.clock.advance(MINUTE);
    const again = new PortalClient(hub.baseUrl);
    await again.get('/login');
    await again.post('/login', { username: user.username, password: user.password });
    const secondCodePage = await again.get('/login/code');
    assert.doesNotMatch(
      secondCodePage.text,
      /otpauth:/,
      'the secret is shown only until the first right code',
    );
  });

  it('renews the session at sign-in, keeps it in the warehouse, and destroys it at sign-out', async () => {
    const client = new PortalClient(hub.baseUrl);
    await client.get('/login');
    const anonymousSid = client.cookie('hub.sid');
    assert.ok(anonymousSid !== undefined);
    await client.post('/login', { username: admin.username, password: admin.password });
    await client.get('/login/code');
    const res = await client.post('/login/code', { code: await generateCode(hub, admin) });
    assert.equal(res.location, '/');
    const sid = client.cookie('hub.sid');
    assert.notEqual(sid, anonymousSid);
    const home = await client.get('/');
    assert.equal(home.status, 200);
    assert.match(home.text, /hub\.admin/);
    const stored = await hub.ctx.knex('hub_sessions').select('sid');
    const rawSid = decodeURIComponent(sid!).slice(2).split('.')[0];
    assert.ok(stored.some((r: { sid: string }) => r.sid === rawSid));

    const out = await client.post('/logout', {});
    assert.equal(out.location, '/login');
    assert.equal((await hub.ctx.knex('hub_sessions').where({ sid: rawSid }).select('sid')).length, 0);
    const replay = new PortalClient(hub.baseUrl);
    await replay.get('/login');
    const stolen = await fetch(`${hub.baseUrl}/`, {
      headers: { cookie: `hub.sid=${sid}` },
      redirect: 'manual',
    });
    assert.equal(stolen.status, 303, 'the old cookie opens nothing after sign-out');
    const actions = (await auditActions(admin.username)).map((a) => a.action);
    assert.ok(actions.includes('login') && actions.includes('logout'), actions.join(','));
  });

  it('sets the session cookie HttpOnly and SameSite, and Secure when a trusted proxy says HTTPS', async () => {
    const res = await fetch(`${hub.baseUrl}/login`);
    const cookie = res.headers.getSetCookie().find((c) => c.startsWith('hub.sid='));
    assert.ok(cookie !== undefined);
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Lax/i);
    assert.doesNotMatch(cookie, /Secure/i, 'plain HTTP without a trusted proxy');

    const ctx = openTestContext(db.url(), hub.dir, { clock: hub.clock });
    ctx.config.trustProxy = 'loopback';
    const server = createServer(buildApp(ctx)).listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const proxied = await fetch(`${url}/login`, { headers: { 'x-forwarded-proto': 'https' } });
      assert.match(
        proxied.headers.getSetCookie().find((c) => c.startsWith('hub.sid='))!,
        /;\s*Secure/i,
      );
      const untrusted = await fetch(`${hub.baseUrl}/login`, { headers: { 'x-forwarded-proto': 'https' } });
      assert.doesNotMatch(
        untrusted.headers.getSetCookie().find((c) => c.startsWith('hub.sid='))!,
        /Secure/i,
      );
    } finally {
      server.closeAllConnections();
      server.close();
      await closeContext(ctx);
    }
  });

  it('keeps a session valid in a second hub process on the same warehouse, and ends it after the idle time', async () => {
    const client = await signIn(hub, admin);
    const ctx = openTestContext(db.url(), hub.dir, { clock: hub.clock });
    const server = createServer(buildApp(ctx)).listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const other = await fetch(`${url}/`, {
        headers: { cookie: `hub.sid=${client.cookie('hub.sid')}` },
        redirect: 'manual',
      });
      assert.equal(other.status, 200);
    } finally {
      server.closeAllConnections();
      server.close();
      await closeContext(ctx);
    }
    hub.clock.advance(29 * MINUTE);
    assert.equal((await client.get('/')).status, 200, 'activity keeps the session');
    hub.clock.advance(31 * MINUTE);
    assert.equal((await client.get('/')).location, '/login', 'idle for longer than 30 minutes');
  });

  it('locks an account for 15 minutes after five wrong codes, answering like an unknown user, and audits the lock', async () => {
    const user = await createPortalUser(hub, 'code.guesser', 'NAF', 'entity-admin');
    const client = new PortalClient(hub.baseUrl);
    await client.get('/login');
    await client.post('/login', { username: user.username, password: user.password });
    await client.get('/login/code');
    const right = await generateCode(hub, user);
    const wrong = right === '000000' ? '111111' : '000000';
    for (let i = 0; i < 5; i += 1) {
      const res = await client.post('/login/code', { code: wrong });
      assert.equal(res.status, 401);
      assert.match(res.text, FAILURE_MESSAGE);
    }
    const locked = await client.post('/login/code', { code: right });
    assert.equal(locked.status, 401, 'even the right code is refused while locked');

    const lockedPassword = new PortalClient(hub.baseUrl);
    await lockedPassword.get('/login');
    const lockedRes = await lockedPassword.post('/login', {
      username: user.username,
      password: user.password,
    });
    const unknown = new PortalClient(hub.baseUrl);
    await unknown.get('/login');
    const unknownRes = await unknown.post('/login', { username: 'no.such.user', password: 'whatever' });
    const messageOf = (text: string) => /data-testid="login-error">([^<]*)</.exec(text)?.[1];
    assert.equal(lockedRes.status, 401);
    assert.equal(unknownRes.status, 401);
    assert.equal(messageOf(lockedRes.text), messageOf(unknownRes.text));
    assert.ok(messageOf(unknownRes.text));

    const actions = await auditActions(user.username);
    assert.equal(actions.filter((a) => a.action === 'login' && a.details.reason === 'bad_code').length, 5);
    assert.equal(actions.filter((a) => a.action === 'login.lock').length, 1);
    assert.ok(actions.some((a) => a.action === 'login' && a.details.reason === 'locked'));

    hub.clock.advance(15 * MINUTE + 1000);
    await signIn(hub, user);
  });

  it('counts wrong passwords toward the same lock', async () => {
    const user = await createPortalUser(hub, 'password.guesser', 'NAF', 'entity-admin');
    const client = new PortalClient(hub.baseUrl);
    await client.get('/login');
    for (let i = 0; i < 5; i += 1)
      assert.equal(
        (await client.post('/login', { username: user.username, password: `wrong-${i}` })).status,
        401,
      );
    assert.equal(
      (await client.post('/login', { username: user.username, password: user.password })).status,
      401,
    );
    hub.clock.advance(15 * MINUTE + 1000);
    await signIn(hub, user);
  });

  it('refuses a form without its CSRF token, changing nothing', async () => {
    const visitor = new PortalClient(hub.baseUrl);
    await visitor.get('/login');
    const forged = await visitor.post(
      '/login',
      { username: admin.username, password: admin.password },
      { csrf: false },
    );
    assert.equal(forged.status, 403);
    assert.match(forged.text, /did not come from this site/);

    const client = await signIn(hub, admin);
    const forgedLogout = await client.post('/logout', {}, { csrf: false });
    assert.equal(forgedLogout.status, 403);
    const wrongToken = await client.post('/logout', { _csrf: 'x'.repeat(43) }, { csrf: false });
    assert.equal(wrongToken.status, 403);
    assert.equal((await client.get('/')).status, 200, 'still signed in');
  });

  it('switches to Arabic with ?lang=ar on any page, right to left, and remembers it', async () => {
    const client = await signIn(hub, admin);
    const ar = await client.get('/?lang=ar');
    assert.match(ar.text, /<html lang="ar" dir="rtl">/);
    const next = await client.get('/');
    assert.match(next.text, /<html lang="ar" dir="rtl">/);
    assert.match(next.text, /الصفحة الرئيسية/);
    const en = await client.get('/?lang=en');
    assert.match(en.text, /<html lang="en" dir="ltr">/);
    const login = new PortalClient(hub.baseUrl);
    assert.match((await login.get('/login?lang=ar')).text, /dir="rtl"/);
  });
});
