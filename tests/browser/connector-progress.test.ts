import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { startApiHub, type ApiHub } from '../support/api-hub.ts';
import { findSeriousViolations, launchBrowser, screenshotPath } from '../support/browser.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { platesDefinition, startGatedRegistry, type GatedRegistry } from '../support/gated-registry.ts';
import { createPortalUser, generateCode } from '../support/portal-client.ts';
import { writeDefinition } from '../support/registry-fixture.ts';

const SLOW_MS = 300_000;

describeEachDatabase("Connector run page in a real browser: the script follows the run's progress", (db) => {
  let hub: ApiHub;
  let registry: GatedRegistry;
  let browser: Browser;
  let page: Page;

  before(async function () {
    this.timeout(SLOW_MS);
    hub = await startApiHub(db.url());
    registry = await startGatedRegistry();
    await writeDefinition(hub.ctx.config.connectorsDir, 'veh-plates', platesDefinition(registry.url));
    const custodian = await createPortalUser(hub, 'progress.veh', 'VEH', 'custodian');
    browser = await launchBrowser();
    page = await (await browser.newContext({ locale: 'en-GB' })).newPage();
    await page.goto(`${hub.baseUrl}/login`);
    await page.getByLabel('Username').fill(custodian.username);
    await page.getByLabel('Password').fill(custodian.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.waitForURL(`${hub.baseUrl}/login/code`);
    await page.getByLabel('Six-digit code').fill(await generateCode(hub, custodian));
    await page.getByRole('button', { name: 'Verify' }).click();
    await page.waitForURL(`${hub.baseUrl}/`);
  });
  after(async () => {
    await browser?.close();
    await registry?.close();
    await hub?.close();
  });

  it('updates the counts in place while the run goes on, then shows the final page once it ends', async function () {
    this.timeout(SLOW_MS);
    registry.hold('1', '2');
    await page.goto(`${hub.baseUrl}/settings/connectors/veh-plates`);
    await page.getByRole('button', { name: 'Run now' }).click();
    await page.waitForURL(/\/settings\/connectors\/veh-plates\/runs\/\d+$/);
    const field = (name: string) => page.locator(`[data-field="${name}"]`);
    assert.equal(await field('read').innerText(), '0');
    assert.equal(await field('phase_text').innerText(), 'reading the source');
    for (const v of await findSeriousViolations(page)) assert.fail(`run page while running: ${v}`);
    // Marks this document: a reload would lose the mark, an update in place keeps it.
    await page.evaluate('window.followedInPlace = true');

    registry.release('1');
    await page.locator('[data-field="read"]', { hasText: /^2$/ }).waitFor();
    assert.equal(await field('phase_text').innerText(), 'reading and loading rows');
    assert.equal(await field('rejected').innerText(), '1');
    assert.equal(await page.evaluate('window.followedInPlace === true'), true, 'updated without a reload');
    await page.screenshot({ path: screenshotPath(`${db.name}-connector-run-progress`), fullPage: true });

    registry.release('2');
    await page.getByTestId('run-result').waitFor();
    assert.match(await page.getByTestId('run-result').innerText(), /succeeded · Read 5 · Rejected 1/);
    assert.equal(await page.evaluate('window.followedInPlace === true'), false, 'the final page was loaded');
    await page.getByTestId('run-rejects').getByText('P-202', { exact: true }).waitFor();
    for (const v of await findSeriousViolations(page)) assert.fail(`run page once finished: ${v}`);
  });
});
