import assert from 'node:assert/strict';
import { verifyAuditChain } from '../../warehouse/audit/verify-audit-chain.ts';
import { fetchWhoRead } from '../../warehouse/audit/who-read.ts';
import {
  assertApiError,
  callApi,
  PERSON,
  serveAnotherHub,
  startApiHub,
  type AnotherHub,
  type ApiHub,
  type ApiResponse,
} from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';

const MINUTE = 60_000;

describeEachDatabase('Consumer API: a rate limit decided with the answer', (db) => {
  let hub: ApiHub;
  // A second hub process on the same warehouse, with its own connections, limiter and audit writer.
  let second: AnotherHub;

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.grant('NAF', 'reg_people', ['national_id', 'full_name', 'gender']);
    second = await serveAnotherHub(hub);
  });

  after(async () => {
    await second?.close();
    await hub?.close();
  });

  const lookUp = (url: string, token: string, nationalId: string) =>
    callApi(url, 'GET', `/api/v1/persons/${nationalId}`, { token });

  const statusesOf = async (clientId: string) =>
    (
      await hub.ctx
        .knex('hub_audit')
        .where({ actor: clientId, action: 'api.call' })
        .orderBy('id')
        .select<{ details: string }[]>('details')
    ).map((row) => JSON.parse(row.details) as { status: number; error?: string });

  function assertRefused(res: ApiResponse): void {
    assertApiError(res, 429, 'rate_limited', /per minute/);
    const retryAfter = Number(res.headers.get('retry-after'));
    assert.ok(
      Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60,
      `Retry-After ${retryAfter}`,
    );
  }

  it('answers exactly the limit when two processes take many calls at once; every other call is a 429 with no data, audited as one', async () => {
    hub.clock.advance(MINUTE);
    const { credentials, token } = await hub.createCaller('NAF', { ratePerMinute: 12 });
    const readsBefore = (await fetchWhoRead(hub.ctx.knex, PERSON.sara)).length;
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        lookUp(i % 2 === 0 ? hub.baseUrl : second.baseUrl, token, PERSON.sara),
      ),
    );
    const answered = answers.filter((res) => res.status === 200);
    assert.equal(answered.length, 12);
    for (const res of answered) assert.match(res.text, /reg_people/);
    const refused = answers.filter((res) => res.status !== 200);
    assert.equal(refused.length, 28);
    for (const res of refused) {
      assertRefused(res);
      assert.doesNotMatch(res.text, new RegExp(`${PERSON.sara}|reg_people|full_name`));
    }

    const events = await statusesOf(credentials.client_id);
    assert.equal(events.filter((e) => e.status === 200).length, 12);
    assert.equal(events.filter((e) => e.status === 429 && e.error === 'rate_limited').length, 28);
    assert.equal(events.length, 40);
    // Only the answers that left with the person's data count as reads of the person.
    assert.equal((await fetchWhoRead(hub.ctx.knex, PERSON.sara)).length - readsBefore, 12);
    assert.equal((await verifyAuditChain(hub.ctx.knex)).ok, true);
  });

  it("counts no refused call in the day's window, whichever process refused it", async () => {
    hub.clock.advance(MINUTE);
    const { token } = await hub.createCaller('NAF', { ratePerMinute: 2, ratePerDay: 5 });
    const urls = [hub.baseUrl, second.baseUrl];
    for (const url of urls) assert.equal((await lookUp(url, token, PERSON.sara)).status, 200);
    for (const url of [...urls, ...urls]) assertRefused(await lookUp(url, token, PERSON.sara));
    // Two more minutes hold the day's other three calls, had the four refusals not been counted.
    hub.clock.advance(MINUTE);
    for (const url of urls) assert.equal((await lookUp(url, token, PERSON.sara)).status, 200);
    hub.clock.advance(MINUTE);
    assert.equal((await lookUp(second.baseUrl, token, PERSON.sara)).status, 200);
    const pastDay = await lookUp(hub.baseUrl, token, PERSON.sara);
    assertApiError(pastDay, 429, 'rate_limited', /per day/);
  });

  it('counts answers that are errors, and refuses a bad request past the limit as any other', async () => {
    hub.clock.advance(MINUTE);
    const { credentials, token } = await hub.createCaller('NAF', { ratePerMinute: 2 });
    assert.equal((await lookUp(hub.baseUrl, token, 'not-an-id')).status, 400);
    assert.equal((await lookUp(second.baseUrl, token, PERSON.sara)).status, 200);
    assertRefused(await lookUp(hub.baseUrl, token, 'not-an-id'));
    assert.deepEqual(
      (await statusesOf(credentials.client_id)).map((e) => e.status),
      [400, 200, 429],
    );
  });
});
