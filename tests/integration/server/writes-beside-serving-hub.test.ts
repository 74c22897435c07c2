import assert from 'node:assert/strict';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Actor } from '../../../privileges/actor.ts';
import { grantAccess, revokeAccess } from '../../../privileges/grants.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { runConnectorByName } from '../../../server/services/connector-service.ts';
import { createClient, disableClient } from '../../../server/services/client-service.ts';
import { buildAuditTurnWrite, type AuditEvent } from '../../../warehouse/audit/record-audit.ts';
import { verifyAuditChain } from '../../../warehouse/audit/verify-audit-chain.ts';
import { systemClock } from '../../../warehouse/core/clock.ts';
import { createTempDir } from '../../support/databases.ts';
import { GRANT_TERMS, openTestContext } from '../../support/hub-context.ts';
import {
  idRegistry,
  peopleDefinition,
  validId,
  writeDefinition,
  writePeopleSource,
  type PersonSourceRow,
} from '../../support/registry-fixture.ts';

const operator: Actor = { name: 'test-operator', role: 'super-admin', entity: null };

const person = (n: number, updatedAt: string): PersonSourceRow => ({
  NATNO: validId(n),
  NAME_AR: `name ${n}`,
  SEX: n % 2 === 0 ? '1' : '2',
  DOB: '01/02/1980',
  UPDATED_AT: updatedAt,
  DELETED: 0,
});

const lookupEvent = (n: number): AuditEvent => ({
  actor: 'naf-client',
  entity: 'NAF',
  action: 'api.call',
  target: 'GET /api/v1/persons/{national_id}',
  details: { status: 200, n },
  subjects: [validId(n)],
});

/**
 * A serving hub, even an idle-looking one, commits a turn of audit rows and rate-limit counts
 * whenever requests come: on SQLite another process's transaction that has read can then no
 * longer write. Here a second connection to the file (the "hub") commits after every statement
 * the process under test runs, whenever SQLite lets it: the harshest order, and a fixed one.
 */
describe('SQLite: the command line and a second worker write beside a serving hub', () => {
  let dir: string;
  let ctx: AppContext;
  let hub: Database.Database;
  let committed = 0;
  let turn = 0;
  let interleave: () => void = () => undefined;

  const commitTurn = () => {
    try {
      hub.prepare('INSERT INTO serving_turns (n) VALUES (?)').run(++turn);
      committed += 1;
    } catch (err) {
      // Refused while the process under test holds the write lock: exactly what it must do.
      if (!String((err as { code?: unknown }).code).startsWith('SQLITE_BUSY')) throw err;
    }
  };

  /** Runs `work` with the hub committing between its statements; returns how often it got in. */
  const besideServingHub = async <T>(work: () => Promise<T>): Promise<{ result: T; turns: number }> => {
    const before = committed;
    interleave = commitTurn;
    try {
      return { result: await work(), turns: committed - before };
    } finally {
      interleave = () => undefined;
    }
  };

  before(async () => {
    dir = await createTempDir('hub-busy-neighbour-');
    const file = path.join(dir, 'hub.sqlite');
    ctx = openTestContext(`sqlite:${file}`, dir);
    const sources = path.join(dir, 'sources');
    await mkdir(sources);
    await idRegistry.define(ctx.config.connectorsDir, sources, 'reg-ids', 'reg_ids', ['id']);
    idRegistry.setIds(sources, 'reg-ids', [validId(1), validId(2), validId(3)]);
    writePeopleSource(path.join(sources, 'people.sqlite'), [
      person(10, '2026-01-01'),
      person(11, '2026-01-01'),
    ]);
    await writeDefinition(
      ctx.config.connectorsDir,
      'reg-people',
      peopleDefinition(path.join(sources, 'people.sqlite')),
    );
    hub = new Database(file);
    hub.pragma('journal_mode = WAL');
    hub.pragma('busy_timeout = 0');
    hub.exec('CREATE TABLE serving_turns (n INTEGER)');
    ctx.knex.on('query-response', () => interleave());
  });

  after(async () => {
    hub?.close();
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  const runConnector = async (name: string, options: { full?: boolean } = {}) => {
    const { result, turns } = await besideServingHub(() => runConnectorByName(ctx, name, options));
    assert.equal(result.status, 'succeeded', result.error ?? '');
    assert.ok(turns > 0, 'the hub committed between the statements of the run');
    return result;
  };

  it('a full load succeeds, the first into an empty table and a reload that swaps one out', async () => {
    await runConnector('reg-ids');
    idRegistry.setIds(path.join(dir, 'sources'), 'reg-ids', [validId(2), validId(3), validId(4)]);
    const reload = await runConnector('reg-ids');
    assert.deepEqual([reload.inserted, reload.deleted], [3, 3]);
    assert.deepEqual(
      await ctx.knex('reg_ids').orderBy('national_id').pluck('national_id'),
      [validId(2), validId(3), validId(4)].sort(),
    );
    const members = await ctx
      .knex('hub_person_tables')
      .where({ table_name: 'reg_ids' })
      .orderBy('national_id')
      .pluck('national_id');
    assert.deepEqual(members, [validId(2), validId(3), validId(4)].sort());
  });

  it('an incremental load succeeds, its first run and one that applies changes', async () => {
    await runConnector('reg-people');
    writePeopleSource(path.join(dir, 'sources', 'people.sqlite'), [person(12, '2026-01-02')]);
    const changes = await runConnector('reg-people');
    assert.equal(changes.inserted, 1);
    assert.equal(
      await ctx
        .knex('reg_people')
        .count({ n: '*' })
        .first()
        .then((r) => Number(r?.n)),
      3,
    );
  });

  it('a grant, a revoke, a new client and a disable succeed', async () => {
    const steps = await besideServingHub(async () => {
      await grantAccess(ctx, {
        consumer: 'NAF',
        table: 'reg_ids',
        columns: [],
        actor: operator,
        ...GRANT_TERMS,
      });
      await revokeAccess(ctx, { consumer: 'NAF', table: 'reg_ids', columns: [], actor: operator });
      const client = await createClient(ctx, { entity: 'REG', ratePerMinute: 60, ratePerDay: 1000 }, 'test');
      await disableClient(ctx, client.client_id, 'test');
      return client;
    });
    assert.ok(steps.turns > 0);
    const status: unknown[] = await ctx
      .knex('hub_clients')
      .where({ client_id: steps.result.client_id })
      .pluck('status');
    assert.deepEqual(status, ['disabled']);
  });

  it('verifying the audit chain while the hub appends to it finds no break', async () => {
    // The hub appends a lookup's event, subjects and all, after every statement of the walk.
    const appendTurn = buildAuditTurnWrite(ctx.knex, systemClock);
    let appended = 0;
    interleave = () => {
      hub.transaction(() => appendTurn.write(hub, [lookupEvent(100 + appended)]))();
      appended += 1;
    };
    try {
      for (const pageSize of [1, 2, 1000]) {
        const report = await verifyAuditChain(ctx.knex, { pageSize });
        assert.deepEqual(report, { ok: true, rows: report.rows }, `page size ${pageSize}`);
      }
    } finally {
      interleave = () => undefined;
    }
    assert.ok(appended > 3);
    const settled = await verifyAuditChain(ctx.knex);
    assert.equal(settled.ok, true);
  });
});
