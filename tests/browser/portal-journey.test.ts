import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { generate } from 'otplib';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { readConfig } from '../../server/config.ts';
import { startHub, type RunningHub } from '../../server/main.ts';
import { findSeriousViolations, launchBrowser, screenshotPath } from '../support/browser.ts';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';

interface DemoUser {
  username: string;
  password: string;
  secret: string;
}

/** Each step drives a real browser and runs axe-core on a shared, busy machine. */
const SLOW_MS = 300_000;
const PURPOSE = 'Means test for cash transfers';
const LEGAL_BASIS = 'National Aid Fund Law, article 7';

/** The demo prints each portal user once: username, password and the otpauth URI. */
function readDemoUsers(lines: string[]): Map<string, DemoUser> {
  const users = new Map<string, DemoUser>();
  for (const line of lines) {
    const m = /^\s+(\S+) \([^)]+\)\s+password: (\S+)\s+totp: (\S+)$/.exec(line);
    if (m === null) continue;
    const secret = new URL(m[3]!).searchParams.get('secret')!;
    users.set(m[1]!, { username: m[1]!, password: m[2]!, secret });
  }
  return users;
}

describeEachDatabase('Portal in a real browser: the custodian, the NAF admin and the API', (db) => {
  let hub: RunningHub;
  let browser: Browser;
  let dataDir: string;
  let users: Map<string, DemoUser>;
  let custodian: Page;
  let nafAdmin: Page;
  const contexts: BrowserContext[] = [];
  const seriousViolations: string[] = [];

  const user = (name: string) => users.get(name) ?? assert.fail(`no demo user ${name}`);
  const url = (path: string) => `${hub.url}${path}`;

  async function openContext(): Promise<Page> {
    const context = await browser.newContext({ locale: 'en-GB', viewport: { width: 1280, height: 900 } });
    contexts.push(context);
    return context.newPage();
  }

  /** Every screen the journey opens is checked by axe-core and kept as a screenshot. */
  async function check(page: Page, name: string): Promise<void> {
    for (const v of await findSeriousViolations(page))
      seriousViolations.push(`${name} ${new URL(page.url()).pathname}: ${v}`);
    await page.screenshot({ path: screenshotPath(`${db.name}-${name}`), fullPage: true });
  }

  /** Password then code, with the keyboard only. */
  async function signIn(page: Page, who: DemoUser): Promise<void> {
    await page.goto(url('/login'));
    await check(page, 'login');
    await page.getByLabel('Username').focus();
    await page.keyboard.type(who.username);
    await page.keyboard.press('Tab');
    await page.keyboard.type(who.password);
    await page.keyboard.press('Enter');
    await page.waitForURL(url('/login/code'));
    await page.getByLabel('Six-digit code').focus();
    await page.keyboard.type(await generate({ secret: who.secret }));
    await page.keyboard.press('Enter');
    await page.waitForURL(url('/'));
  }

  before(async function () {
    this.timeout(300_000);
    dataDir = await createTempDir('hub-browser-');
    const printed: string[] = [];
    const config = readConfig(
      {
        HUB_DATA_DIR: dataDir,
        HUB_DEMO: 'on',
        HUB_DEMO_PERSONS: '300',
        HUB_SCHEDULER: 'off',
        LOG_LEVEL: 'silent',
      },
      { databaseUrl: db.url(), port: 0 },
    );
    hub = await startHub(config, (line) => printed.push(line));
    users = readDemoUsers(printed);
    browser = await launchBrowser();
  });

  after(async () => {
    for (const context of contexts) await context.close();
    await browser?.close();
    await hub?.stop();
    if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true });
  });

  it('signs the CSPD custodian in with password and code; a first sign-in shows the QR code', async function () {
    this.timeout(SLOW_MS);
    custodian = await openContext();
    await custodian.goto(url('/login'));
    await custodian.getByLabel('Username').fill(user('cspd.custodian').username);
    await custodian.getByLabel('Password').fill(user('cspd.custodian').password);
    await custodian.getByRole('button', { name: 'Sign in' }).click();
    await custodian.waitForURL(url('/login/code'));
    assert.equal(await custodian.getByRole('img', { name: /QR code/ }).count(), 1);
    await check(custodian, 'code-enroll');
    await custodian
      .getByLabel('Six-digit code')
      .fill(await generate({ secret: user('cspd.custodian').secret }));
    await custodian.getByRole('button', { name: 'Verify' }).click();
    await custodian.waitForURL(url('/'));
    await custodian.getByRole('heading', { name: 'Home' }).waitFor();
    assert.match(await custodian.getByTestId('who').innerText(), /cspd\.custodian/);
    assert.equal(
      await custodian.getByRole('img', { name: /API calls per day/ }).count(),
      1,
      'the chart is drawn by the hub',
    );
    await check(custodian, 'home-custodian');
  });

  it('grants NAF a table in the table matrix and a column in the column matrix, with a purpose', async function () {
    this.timeout(SLOW_MS);
    await custodian.goto(url('/privileges/tables'));
    await custodian.getByRole('checkbox', { name: 'NAF · Births' }).check();
    await custodian.getByLabel('Purpose').fill(PURPOSE);
    await custodian.getByLabel('Legal basis').fill(LEGAL_BASIS);
    await check(custodian, 'privileges-tables');
    await custodian.getByRole('button', { name: 'Update' }).click();
    await custodian.getByText('The privileges were updated.').waitFor();
    assert.ok(await custodian.getByRole('checkbox', { name: 'NAF · Births' }).isChecked());

    await custodian.goto(url('/privileges/columns/cspd_personal_info'));
    await custodian.getByRole('checkbox', { name: "NAF · Mother's name" }).check();
    await custodian.getByLabel('Purpose').fill(PURPOSE);
    await custodian.getByLabel('Legal basis').fill(LEGAL_BASIS);
    await check(custodian, 'privileges-columns');
    await custodian.getByRole('button', { name: 'Update' }).click();
    await custodian.getByText('The privileges were updated.').waitFor();
    assert.ok(await custodian.getByRole('checkbox', { name: "NAF · Mother's name" }).isChecked());
  });

  it('lets the NAF admin build a query, see its SQL, run it and save it', async function () {
    this.timeout(SLOW_MS);
    nafAdmin = await openContext();
    await signIn(nafAdmin, user('naf.admin'));
    await nafAdmin.goto(url('/queries/builder'));
    await nafAdmin.getByRole('checkbox', { name: /Personal information/ }).check();
    await nafAdmin.getByRole('button', { name: 'Show columns', exact: true }).click();
    for (const name of ['National ID', 'First name', "Mother's name"]) {
      await nafAdmin
        .getByRole('checkbox', { name: new RegExp(`^${name}`) })
        .first()
        .check();
    }
    await nafAdmin.getByRole('button', { name: 'Add a condition' }).click();
    await nafAdmin
      .getByRole('combobox', { name: /^Column/ })
      .selectOption('cspd_personal_info.marital_status');
    await nafAdmin.getByLabel('Value (lists: comma-separated)').fill('W');
    await nafAdmin.getByRole('button', { name: 'Generate SQL' }).click();
    const sql = await nafAdmin.getByTestId('generated-sql').innerText();
    assert.match(sql, /[`"]cspd_personal_info[`"]\.[`"]mother_name[`"]/);
    await check(nafAdmin, 'query-builder-sql');
    await nafAdmin.getByRole('button', { name: 'Run' }).click();
    const count = Number(
      (await nafAdmin.getByTestId('result-count').locator('strong').innerText()).replace(/\D/g, ''),
    );
    assert.ok(count > 0, 'the demo has widows');
    await check(nafAdmin, 'query-builder-results');
    await nafAdmin.getByLabel('Query name').fill('naf-widows-mothers');
    await nafAdmin.getByLabel('Description').fill('Widows and their mothers');
    await nafAdmin.getByRole('button', { name: 'Save', exact: true }).click();
    await nafAdmin.waitForURL(/\/queries\?saved=naf-widows-mothers/);
    await nafAdmin.getByRole('heading', { name: /naf-widows-mothers/ }).waitFor();
    await check(nafAdmin, 'saved-queries');
  });

  it("calls the saved query's endpoint with a client created in Settings and gets the rows", async function () {
    this.timeout(SLOW_MS);
    await nafAdmin.goto(url('/settings/clients'));
    await nafAdmin.getByLabel('Name').fill('NAF payments');
    await nafAdmin.getByRole('button', { name: 'Create' }).click();
    const clientId = await nafAdmin.getByTestId('client-id').innerText();
    const clientSecret = await nafAdmin.getByTestId('client-secret').innerText();
    await check(nafAdmin, 'settings-clients');
    const tokenRes = await fetch(url('/api/v1/token'), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        grant_type: 'client_credentials',
        client_id: clientId,
        client_secret: clientSecret,
      }),
    });
    const { access_token: token } = (await tokenRes.json()) as { access_token: string };
    const run = await fetch(url('/api/v1/queries/naf-widows-mothers'), {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ page: 1, page_size: 10 }),
    });
    assert.equal(run.status, 200);
    const body = (await run.json()) as { columns: string[]; rows: unknown[] };
    assert.ok(body.columns.includes('cspd_personal_info.mother_name'));
    assert.ok(body.rows.length > 0);
  });

  it('revokes the column after showing what breaks, and the saved query is marked broken', async function () {
    this.timeout(SLOW_MS);
    await custodian.goto(url('/privileges/columns/cspd_personal_info'));
    await custodian.getByRole('checkbox', { name: "NAF · Mother's name" }).uncheck();
    await custodian.getByRole('button', { name: 'Update' }).click();
    await custodian.getByRole('heading', { name: 'Confirm the revoke' }).waitFor();
    assert.match(await custodian.getByTestId('broken-queries').innerText(), /naf-widows-mothers/);
    await check(custodian, 'privileges-confirm');
    await custodian.getByRole('button', { name: 'Confirm and update' }).click();
    await custodian.getByText('The privileges were updated.').waitFor();

    await nafAdmin.goto(url('/queries'));
    const warning = nafAdmin.getByTestId('query-naf-widows-mothers').getByTestId('broken');
    assert.match(await warning.innerText(), /cspd_personal_info\.mother_name/);
  });

  it('refuses the privilege screens to an entity admin who types their URL', async function () {
    this.timeout(SLOW_MS);
    for (const path of ['/privileges/tables', '/privileges/columns/cspd_personal_info']) {
      const response = await nafAdmin.goto(url(path));
      assert.equal(response?.status(), 403, path);
    }
    await check(nafAdmin, 'forbidden');
  });

  it('shows the Arabic pages right to left, and remembers the language', async function () {
    this.timeout(SLOW_MS);
    await nafAdmin.goto(url('/queries/builder?lang=ar'));
    assert.equal(await nafAdmin.locator('html').getAttribute('dir'), 'rtl');
    assert.equal(await nafAdmin.locator('html').getAttribute('lang'), 'ar');
    await nafAdmin.getByRole('heading', { name: 'منشئ الاستعلامات' }).waitFor();
    await check(nafAdmin, 'query-builder-ar');
    await nafAdmin.goto(url('/'));
    assert.equal(await nafAdmin.locator('html').getAttribute('dir'), 'rtl');
    await check(nafAdmin, 'home-ar');
    const menuBox = await nafAdmin.getByRole('navigation', { name: 'القائمة الرئيسية' }).boundingBox();
    assert.ok(menuBox !== null && menuBox.x > 600, 'the side menu is on the right');
    await nafAdmin.getByRole('link', { name: 'English' }).click();
    assert.equal(await nafAdmin.locator('html').getAttribute('dir'), 'ltr');
  });

  it('opens every other screen as the operator with no serious accessibility violation', async function () {
    this.timeout(SLOW_MS);
    const operator = await openContext();
    await signIn(operator, user('admin'));
    for (const [path, name] of [
      ['/', 'home'],
      ['/settings/entities', 'settings-entities'],
      ['/settings/users', 'settings-users'],
      ['/settings/connectors', 'settings-connectors'],
      ['/settings/connectors/cspd-personal-info', 'settings-connector'],
      ['/audit', 'audit'],
      ['/privileges/columns', 'privileges-column-tables'],
    ] as const) {
      await operator.goto(url(path));
      await check(operator, name);
    }
    await operator.goto(url('/settings/connectors'));
    await operator.getByRole('button', { name: 'Run now: cspd-births' }).click();
    await operator.getByTestId('run-result').waitFor();
    await check(operator, 'settings-connector-run');
    await operator.goto(url(`/audit?national_id=${encodeURIComponent('0000000000')}`));
    await check(operator, 'audit-who-read');
  });

  it('locks an account after five wrong codes', async function () {
    this.timeout(SLOW_MS);
    const page = await openContext();
    const who = user('admin');
    await page.goto(url('/login'));
    await page.getByLabel('Username').fill(who.username);
    await page.getByLabel('Password').fill(who.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(url('/login/code'));
    const right = await generate({ secret: who.secret });
    const wrong = String((Number(right) + 1) % 1_000_000).padStart(6, '0');
    // Each code is answered before the next is typed: the error of the answer before is still on
    // the page while the next one loads, and typing into it raced that load.
    const verify = async (code: string) => {
      await page.getByLabel('Six-digit code').fill(code);
      const answered = page.waitForResponse(
        (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/login/code',
      );
      await page.getByRole('button', { name: 'Verify' }).click();
      assert.equal((await answered).status(), 401);
      await page.getByTestId('login-error').waitFor();
    };
    for (let i = 0; i < 5; i += 1) await verify(wrong);
    await verify(await generate({ secret: who.secret }));
    assert.match(await page.getByTestId('login-error').innerText(), /locked/);
    assert.equal(new URL(page.url()).pathname, '/login/code', 'still not signed in');
    await check(page, 'locked');
  });

  it('met no serious accessibility violation on any screen', () => {
    assert.deepEqual(seriousViolations, []);
  });
});
