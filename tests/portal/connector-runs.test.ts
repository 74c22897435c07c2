import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { runConnectorByName } from '../../server/services/connector-service.ts';
import { connectorLockName } from '../../connectors/run-connector.ts';
import { systemClock } from '../../warehouse/core/clock.ts';
import { acquireLock } from '../../warehouse/lock.ts';
import { PERSON, startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { createPortalUser, signIn, type PortalClient } from '../support/portal-client.ts';
import { platesDefinition, startGatedRegistry, type GatedRegistry } from '../support/gated-registry.ts';
import { PLATES_DONE, PLATES_MIDWAY, standingOf, type RunProgressAnswer } from '../support/run-progress.ts';
import { badCheckDigitId, validId, writeDefinition } from '../support/registry-fixture.ts';

type Progress = RunProgressAnswer;

const runPage = (connector: string, runId: number) => `/settings/connectors/${connector}/runs/${runId}`;

async function readProgress(client: PortalClient, connector: string, runId: number): Promise<Progress> {
  const res = await client.get(`${runPage(connector, runId)}/progress.json`);
  assert.equal(res.status, 200, res.text);
  return JSON.parse(res.text) as Progress;
}

/** Asks the run's progress as the page's script does, until `done` holds (at most ~20 s). */
async function waitForProgress(
  client: PortalClient,
  connector: string,
  runId: number,
  done: (p: Progress) => boolean,
): Promise<Progress> {
  for (let i = 0; i < 400; i += 1) {
    const progress = await readProgress(client, connector, runId);
    if (done(progress)) return progress;
    await sleep(50);
  }
  throw new Error(`run ${runId} of ${connector} never reached the expected state`);
}

/** Run now as a user does it; returns the run id the answer leads to. */
async function runNow(client: PortalClient, connector: string): Promise<number> {
  await client.get(`/settings/connectors/${connector}`);
  const ran = await client.post(`/settings/connectors/${connector}/run`, { full: 'yes' });
  assert.equal(ran.status, 303, ran.text);
  const runId = Number(
    new RegExp(`^/settings/connectors/${connector}/runs/(\\d+)$`).exec(ran.location ?? '')?.[1],
  );
  assert.ok(runId > 0, ran.location ?? '');
  return runId;
}

describeEachDatabase('Portal connector runs: Run now with progress, history, rejects per run', (db) => {
  let hub: ApiHub;
  let registry: GatedRegistry;
  let operator: PortalClient;
  let vehCustodian: PortalClient;
  let regCustodian: PortalClient;
  let nafAdmin: PortalClient;

  before(async () => {
    // As `hub start` runs them: each run in a process of its own, which reports to the portal's process.
    hub = await startApiHub(db.url(), { loadProcesses: true });
    registry = await startGatedRegistry();
    await hub.grant('NAF', 'reg_people', ['national_id']);
    await writeDefinition(hub.ctx.config.connectorsDir, 'veh-plates', platesDefinition(registry.url));
    operator = await signIn(hub, await createPortalUser(hub, 'runs.operator', 'VEH', 'super-admin'));
    vehCustodian = await signIn(hub, await createPortalUser(hub, 'runs.veh', 'VEH', 'custodian'));
    regCustodian = await signIn(hub, await createPortalUser(hub, 'runs.reg', 'REG', 'custodian'));
    nafAdmin = await signIn(hub, await createPortalUser(hub, 'runs.naf', 'NAF', 'entity-admin'));
  });
  after(async () => {
    await registry.close();
    await hub.close();
  });

  it("answers Run now at once and shows the running load's progress, then its result and rejects", async () => {
    registry.hold('2');
    const runId = await runNow(vehCustodian, 'veh-plates');

    // The answer came while the source still holds its second page: the run goes on behind it.
    const midway = await waitForProgress(vehCustodian, 'veh-plates', runId, (p) => p.read >= 2);
    assert.deepEqual(standingOf(midway), PLATES_MIDWAY);
    assert.equal(midway.finished, false);
    assert.equal(midway.phase_text, 'reading and loading rows');
    const page = await vehCustodian.get(runPage('veh-plates', runId));
    assert.equal(page.status, 200);
    assert.match(page.text, /<noscript><meta http-equiv="refresh" content="2"><\/noscript>/);
    assert.match(page.text, /<script src="\/public\/connector-progress\.js" defer><\/script>/);
    assert.match(page.text, /data-testid="run-phase">reading and loading rows</);
    assert.match(page.text, new RegExp(`data-progress-url="${runPage('veh-plates', runId)}/progress.json"`));
    assert.doesNotMatch(page.text, /data-testid="run-result"/);

    // A second Run now while this one runs is refused, and no second run is recorded.
    const runsBefore = await hub.ctx.knex('hub_connector_runs').where({ connector: 'veh-plates' });
    const again = await vehCustodian.post('/settings/connectors/veh-plates/run', {});
    assert.equal(again.status, 409);
    assert.match(again.text, /This connector is running already[\s\S]*veh-plates is already running/);
    assert.match(
      again.text,
      new RegExp(`data-testid="run-in-progress"[\\s\\S]*href="${runPage('veh-plates', runId)}"`),
    );
    assert.equal(
      (await hub.ctx.knex('hub_connector_runs').where({ connector: 'veh-plates' })).length,
      runsBefore.length,
    );

    registry.release('2');
    const done = await waitForProgress(vehCustodian, 'veh-plates', runId, (p) => p.finished);
    assert.deepEqual(standingOf(done), PLATES_DONE);
    assert.equal(
      Number((await hub.ctx.knex('veh_plates').count({ n: '*' }).first<{ n: number | string }>())?.n),
      4,
    );
    const result = await vehCustodian.get(runPage('veh-plates', runId));
    assert.match(result.text, /data-testid="run-result">Run finished: succeeded · Read 5 · Rejected 1</);
    assert.doesNotMatch(
      result.text,
      /http-equiv="refresh"|connector-progress\.js/,
      'a finished run stops following',
    );
    assert.match(
      result.text,
      new RegExp(
        `data-testid="run-rejects"[\\s\\S]*P-202[\\s\\S]*check digit is wrong[\\s\\S]*${badCheckDigitId(202)}`,
      ),
    );
  });

  it('refuses Run now while a run started elsewhere (the command line, another hub process) holds the connector', async () => {
    registry.hold('2');
    // On the real clock, as the command line or another hub would run it: its lease is read by
    // the portal's run process, which keeps the real time, not the test's.
    const elsewhere = runConnectorByName({ ...hub.ctx, clock: systemClock }, 'veh-plates', {
      full: true,
      trigger: 'manual',
      actor: 'cli:ops',
    });
    let runId = 0;
    for (let i = 0; i < 400 && runId === 0; i += 1) {
      const row = await hub.ctx
        .knex('hub_connector_runs')
        .where({ connector: 'veh-plates', status: 'running' })
        .first<{ id: number | string } | undefined>('id');
      runId = Number(row?.id ?? 0);
      if (runId === 0) await sleep(25);
    }
    assert.ok(runId > 0, 'the other run started');

    const connector = await operator.get('/settings/connectors/veh-plates');
    assert.match(
      connector.text,
      new RegExp(`data-testid="run-in-progress"[\\s\\S]*href="${runPage('veh-plates', runId)}"`),
    );
    const refused = await operator.post('/settings/connectors/veh-plates/run', {});
    assert.equal(refused.status, 409);
    assert.match(refused.text, /veh-plates is already running/);
    // The run's own process writes its progress on its record: this process shows it too.
    const progress = await waitForProgress(operator, 'veh-plates', runId, (p) => p.read >= 2);
    assert.deepEqual(
      standingOf(progress),
      PLATES_MIDWAY,
      "a run of another process is known from its record, as that process's load writes it",
    );
    assert.equal(progress.finished, false);
    assert.equal(progress.phase_text, 'reading and loading rows');

    registry.release('2');
    assert.equal((await elsewhere).status, 'succeeded');
    assert.equal((await readProgress(operator, 'veh-plates', runId)).phase, 'finished');
  });

  it('shows a run of another process running until it has released its lock, though its record ended at the commit', async () => {
    // Another process's run past its commit (building its indexes, writing its audit event): its
    // lock taken first, then its record written, then the record ended while the lock is still held.
    const lock = await acquireLock(hub.ctx.knex, connectorLockName('veh-plates'), { clock: systemClock });
    let runId: number;
    try {
      const startedAt = new Date().toISOString();
      const inserted: Array<{ id: number | string }> = await hub.ctx.knex('hub_connector_runs').insert(
        {
          connector: 'veh-plates',
          mode: 'full',
          trigger: 'manual',
          status: 'succeeded',
          started_at: startedAt,
          finished_at: startedAt,
          rows_read: 3,
          rows_inserted: 3,
        },
        ['id'],
      );
      runId = Number(inserted[0]?.id);
      const finishing = await readProgress(operator, 'veh-plates', runId);
      assert.deepEqual(
        { status: finishing.status, finished: finishing.finished, finished_at: finishing.finished_at },
        { status: 'running', finished: false, finished_at: null },
      );
      const refused = await operator.post('/settings/connectors/veh-plates/run', {});
      assert.equal(refused.status, 409, 'Run now is refused, as the page says the run goes on');
    } finally {
      await lock.release();
    }
    const ended = await readProgress(operator, 'veh-plates', runId);
    assert.deepEqual(
      { status: ended.status, phase: ended.phase, finished: ended.finished },
      { status: 'succeeded', phase: 'finished', finished: true },
    );
    const older = await hub.ctx
      .knex('hub_connector_runs')
      .where({ connector: 'veh-plates', status: 'succeeded' })
      .whereNot({ id: runId })
      .first<{ id: number | string }>('id');
    const other = await acquireLock(hub.ctx.knex, connectorLockName('veh-plates'), { clock: systemClock });
    try {
      assert.equal(
        (await readProgress(operator, 'veh-plates', Number(older?.id))).finished,
        true,
        "an earlier run is not held by a later run's lock",
      );
    } finally {
      await other.release();
    }
  });

  it("keeps each run's rejects: the history lists every run, each with its own rejected rows and CSV", async () => {
    const csv = path.join(hub.dir, 'vehicles.csv');
    const header = 'OWNER,PLATE,KIND,YEAR,INSURED';
    await writeFile(
      csv,
      [header, `${PERSON.sara},20-2001,سيارة,2020,1`, `${badCheckDigitId(301)},91-0001,سيارة,2001,0`].join(
        '\n',
      ),
    );
    const first = await runNow(vehCustodian, 'veh-vehicles');
    await waitForProgress(vehCustodian, 'veh-vehicles', first, (p) => p.finished);
    await writeFile(
      csv,
      [header, `${PERSON.sara},20-2001,سيارة,2020,1`, `${validId(302)},,شاحنة,2002,0`].join('\n'),
    );
    const second = await runNow(vehCustodian, 'veh-vehicles');
    await waitForProgress(vehCustodian, 'veh-vehicles', second, (p) => p.finished);

    const connector = await vehCustodian.get('/settings/connectors/veh-vehicles');
    for (const runId of [first, second]) {
      assert.match(connector.text, new RegExp(`href="${runPage('veh-vehicles', runId)}"`));
      assert.match(connector.text, new RegExp(`href="${runPage('veh-vehicles', runId)}/rejects.csv"`));
    }

    const firstPage = await vehCustodian.get(runPage('veh-vehicles', first));
    assert.match(firstPage.text, new RegExp(badCheckDigitId(301)));
    assert.doesNotMatch(firstPage.text, /91-0002|302/);
    const secondPage = await vehCustodian.get(runPage('veh-vehicles', second));
    assert.match(secondPage.text, /data-testid="run-rejects"[\s\S]*registration_number/);
    assert.doesNotMatch(secondPage.text, new RegExp(badCheckDigitId(301)));

    const firstCsv = await vehCustodian.get(`${runPage('veh-vehicles', first)}/rejects.csv`);
    assert.equal(firstCsv.status, 200);
    const firstLines = firstCsv.text.trim().split('\n');
    assert.equal(firstLines[0], 'run_id,source_key,reason,raw_row');
    assert.equal(firstLines.length, 2, firstCsv.text);
    assert.match(firstLines[1]!, new RegExp(`^${first},[^\\n]*${badCheckDigitId(301)}`));
    const secondCsv = await vehCustodian.get(`${runPage('veh-vehicles', second)}/rejects.csv`);
    const secondLines = secondCsv.text.trim().split('\n');
    assert.equal(secondLines.length, 2, secondCsv.text);
    assert.match(secondLines[1]!, new RegExp(`^${second},`));
    assert.doesNotMatch(secondCsv.text, new RegExp(badCheckDigitId(301)));
  });

  it("answers 403 to a role the connector screens are not for, and 404 to another entity's connector, an unknown one or an unknown run", async () => {
    const run = await hub.ctx
      .knex('hub_connector_runs')
      .where({ connector: 'veh-vehicles' })
      .orderBy('id', 'desc')
      .first<{ id: number | string }>('id');
    const runId = Number(run?.id);
    const regRun = Number(
      (
        await hub.ctx
          .knex('hub_connector_runs')
          .where({ connector: 'reg-people' })
          .first<{ id: number | string }>('id')
      )?.id,
    );
    const countRuns = async () =>
      Number((await hub.ctx.knex('hub_connector_runs').count({ n: '*' }).first<{ n: number | string }>())?.n);
    const runsBefore = await countRuns();

    for (const path of [
      '/settings/connectors/veh-vehicles',
      runPage('veh-vehicles', runId),
      `${runPage('veh-vehicles', runId)}/rejects.csv`,
    ]) {
      assert.equal((await nafAdmin.get(path)).status, 403, path);
    }
    const json = await nafAdmin.get(`${runPage('veh-vehicles', runId)}/progress.json`);
    assert.equal(json.status, 403);
    assert.equal((JSON.parse(json.text) as { error: { code: string } }).error.code, 'forbidden');
    await nafAdmin.get('/');
    const forbidden = await nafAdmin.post('/settings/connectors/veh-vehicles/run', {});
    assert.equal(forbidden.status, 403);
    assert.match(forbidden.text, /Your role may not use this page/);

    for (const path of [runPage('veh-vehicles', runId), `${runPage('veh-vehicles', runId)}/rejects.csv`]) {
      const res = await regCustodian.get(path);
      assert.equal(res.status, 404, path);
      assert.doesNotMatch(res.text, /registration_number|20-2001/);
    }
    const foreign = await regCustodian.get(`${runPage('veh-vehicles', runId)}/progress.json`);
    assert.equal(foreign.status, 404);
    assert.equal((JSON.parse(foreign.text) as { error: { code: string } }).error.code, 'not_found');
    await regCustodian.get('/settings/connectors');
    assert.equal((await regCustodian.post('/settings/connectors/veh-vehicles/run', {})).status, 404);

    for (const path of [
      '/settings/connectors/no-such-connector',
      runPage('no-such-connector', 1),
      runPage('veh-vehicles', 999999),
      '/settings/connectors/veh-vehicles/runs/abc',
      '/settings/connectors/veh-vehicles/runs/-1',
      `${runPage('veh-vehicles', 999999)}/rejects.csv`,
      runPage('veh-vehicles', regRun),
    ]) {
      const res = await operator.get(path);
      assert.equal(res.status, 404, path);
      assert.match(res.text, /<html/, `${path}: a page, not a stack`);
    }
    const unknownJson = await operator.get(`${runPage('veh-vehicles', 999999)}/progress.json`);
    assert.equal(unknownJson.status, 404);
    assert.equal((JSON.parse(unknownJson.text) as { error: { code: string } }).error.code, 'unknown_run');
    await operator.get('/settings/connectors');
    assert.equal((await operator.post('/settings/connectors/no-such-connector/run', {})).status, 404);
    assert.equal(await countRuns(), runsBefore, 'no refused request started a run');
  });
});
