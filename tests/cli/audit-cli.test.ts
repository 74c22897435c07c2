import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { generate } from 'otplib';
import { closeContext, type AppContext } from '../../server/context.ts';
import { verifyUserLogin } from '../../server/services/user-service.ts';
import { recordAudit } from '../../warehouse/audit/record-audit.ts';
import { indexWhoRead, WHO_READ_TABLE } from '../../warehouse/audit/who-read-index.ts';
import type { WhoReadRow } from '../../warehouse/audit/who-read.ts';
import { tamperWithAudit } from '../support/audit-attacker.ts';
import { createTempDir, describeEachDatabase } from '../support/databases.ts';
import { insertEntities, openTestContext } from '../support/hub-context.ts';
import { validId } from '../support/registry-fixture.ts';
import { runHubCli } from '../support/run-hub-cli.ts';
import { countAuditRows } from '../support/audit-rows.ts';

describeEachDatabase('hub clients, users and audit (command line)', (db) => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  let ctx: AppContext;
  const hub = (...args: string[]) => runHubCli([...args, '--db', db.url()], env);

  before(async () => {
    dir = await createTempDir('hub-cli-access-');
    env = { HUB_DATA_DIR: dir };
    const migrated = await hub('migrate');
    assert.equal(migrated.code, 0, migrated.stderr);
    ctx = openTestContext(db.url(), dir);
    await insertEntities(ctx, 'NAF', 'CSPD');
  });

  after(async () => {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
  });

  describe('clients', () => {
    it('create prints the client id and secret as JSON and stores the limits', async () => {
      const result = await hub(
        'clients',
        'create',
        'NAF',
        '--name',
        'NAF MIS',
        '--rate-per-minute',
        '30',
        '--allow-ip',
        '10.0.0.1',
        '10.0.0.2',
      );
      assert.equal(result.code, 0, result.stderr);
      const created = JSON.parse(result.stdout) as Record<string, string>;
      assert.deepEqual(Object.keys(created), ['client_id', 'client_secret']);
      assert.match(created.client_id ?? '', /^naf-[0-9a-f]{8}$/);
      assert.match(created.client_secret ?? '', /^[\w-]{43}$/);
      const stored = await ctx
        .knex('hub_clients')
        .where({ client_id: created.client_id })
        .first<Record<string, unknown>>();
      assert.deepEqual(
        [stored.name, stored.rate_per_minute, JSON.parse(String(stored.allowed_ips))],
        ['NAF MIS', 30, ['10.0.0.1', '10.0.0.2']],
      );
      const audit = await ctx
        .knex('hub_audit')
        .where({ action: 'client.create', target: created.client_id })
        .first<{ actor: string }>('actor');
      assert.match(audit.actor, /^cli:\S+$/);
    });

    it('create exits 1 for an unknown entity and 2 for a bad limit, creating nothing', async () => {
      const unknown = await hub('clients', 'create', 'NOPE');
      assert.equal(unknown.code, 1);
      assert.match(unknown.stderr, /^hub: unknown entity "NOPE"/m);
      const badRate = await hub('clients', 'create', 'NAF', '--rate-per-day', 'lots');
      assert.equal(badRate.code, 2);
      assert.match(badRate.stderr, /--rate-per-day must be a positive integer/);
      assert.equal(unknown.stdout + badRate.stdout, '');
      assert.equal((await ctx.knex('hub_clients').whereNot({ entity: 'NAF' }).select('client_id')).length, 0);
    });

    it('list, rotate and disable', async () => {
      const { client_id: clientId } = JSON.parse((await hub('clients', 'create', 'CSPD')).stdout) as {
        client_id: string;
      };
      const rotated = await hub('clients', 'rotate', clientId);
      assert.equal(rotated.code, 0, rotated.stderr);
      assert.equal((JSON.parse(rotated.stdout) as { client_id: string }).client_id, clientId);
      const disabled = await hub('clients', 'disable', clientId);
      assert.equal(disabled.code, 0, disabled.stderr);
      assert.equal(disabled.stdout.trim(), `disabled ${clientId}`);

      const list = await hub('clients', 'list');
      assert.equal(list.code, 0, list.stderr);
      assert.match(
        list.stdout,
        new RegExp(`^${clientId}\\s+CSPD\\s+disabled\\s+120/min 50000/day any-ip`, 'm'),
      );
      assert.match(
        list.stdout,
        /^naf-[0-9a-f]{8}\s+NAF\s+active\s+30\/min 50000\/day 10\.0\.0\.1,10\.0\.0\.2 {2}NAF MIS$/m,
      );
      const json = JSON.parse((await hub('clients', 'list', '--json')).stdout) as Array<
        Record<string, unknown>
      >;
      assert.ok(json.every((c) => !('secret_hash' in c)));

      const missing = await hub('clients', 'disable', 'naf-00000000');
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^hub: no API client "naf-00000000"/m);
    });
  });

  describe('users', () => {
    it('create prints the password and the otpauth URI, and they sign in', async () => {
      const result = await hub('users', 'create', 'rana.admin', '--entity', 'NAF', '--role', 'entity-admin');
      assert.equal(result.code, 0, result.stderr);
      const lines = result.stdout.trim().split('\n');
      assert.equal(lines.length, 2);
      const password = /^password: (\S+)$/.exec(lines[0] ?? '')?.[1] ?? '';
      const uri = /^otpauth: (otpauth:\/\/totp\/\S+)$/.exec(lines[1] ?? '')?.[1] ?? '';
      assert.ok(password.length >= 20, result.stdout);
      assert.match(decodeURIComponent(uri), /^otpauth:\/\/totp\/Registry Hub:rana\.admin\?/);

      const secret = new URL(uri).searchParams.get('secret') ?? '';
      const user = await verifyUserLogin(ctx, 'rana.admin', password, await generate({ secret }));
      assert.deepEqual([user.entity, user.role], ['NAF', 'entity-admin']);
    });

    it('refuses a bad role or a missing entity as usage errors, and a duplicate with exit 1', async () => {
      const badRole = await hub('users', 'create', 'rami.x', '--entity', 'NAF', '--role', 'admin');
      assert.equal(badRole.code, 2);
      assert.match(
        badRole.stderr,
        /argument 'admin' is invalid\. Allowed choices are super-admin, custodian, entity-admin/,
      );
      const noEntity = await hub('users', 'create', 'rami.x', '--role', 'custodian');
      assert.equal(noEntity.code, 2);
      assert.match(noEntity.stderr, /required option '--entity <code>' not specified/);
      const badName = await hub('users', 'create', 'X', '--entity', 'NAF', '--role', 'custodian');
      assert.equal(badName.code, 1);
      assert.match(badName.stderr, /^hub: username: must match/m);
      const duplicate = await hub('users', 'create', 'rana.admin', '--entity', 'NAF', '--role', 'custodian');
      assert.equal(duplicate.code, 1);
      assert.match(duplicate.stderr, /^hub: user "rana.admin" already exists/m);
      assert.equal((await ctx.knex('hub_users').where({ username: 'rami.x' }).select('username')).length, 0);
    });
  });

  describe('audit', () => {
    it('verify says ok with the row count, then exits 1 naming a tampered row', async () => {
      const ok = await hub('audit', 'verify');
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(
        ok.stdout.trim(),
        new RegExp(`^audit chain ok: ${await countAuditRows(ctx.knex)} rows; no checkpoint yet in `),
      );

      const row = await ctx
        .knex('hub_audit')
        .where({ action: 'client.create' })
        .orderBy('id')
        .first<{ id: number | string; details: string }>('id', 'details');
      // As an attacker with DDL rights: the append-only triggers are dropped first.
      const broken = await tamperWithAudit(ctx.knex, async () => {
        await ctx
          .knex('hub_audit')
          .where({ id: row.id })
          .update({ details: row.details.replace('"rate_per_minute":30', '"rate_per_minute":3000') });
        const result = await hub('audit', 'verify');
        await ctx.knex('hub_audit').where({ id: row.id }).update({ details: row.details });
        return result;
      });

      assert.equal(broken.code, 1);
      assert.equal(broken.stdout, '');
      assert.match(
        broken.stderr,
        new RegExp(`^hub: audit chain broken at row ${row.id}: row was edited`, 'm'),
      );
      assert.equal((await hub('audit', 'verify')).code, 0);
    });

    it('who-read lists who read a person, newest first, as text or JSON', async () => {
      const person = validId(777);
      await recordAudit(ctx.knex, ctx.clock, {
        actor: 'naf-0a0b0c0d',
        entity: 'NAF',
        action: 'api.call',
        target: `/api/v1/persons/${person}`,
        details: { columns: ['cspd_personal_info.first_name', 'cspd_personal_info.gender'] },
        subjects: [person],
      });
      await recordAudit(ctx.knex, ctx.clock, {
        actor: 'rana.admin',
        entity: 'NAF',
        action: 'query.run',
        target: 'widows-with-vehicles',
        details: { columns: ['dvld_vehicles.vehicle_type'] },
        subjects: [person, validId(778)],
      });

      const text = await hub('audit', 'who-read', person);
      assert.equal(text.code, 0, text.stderr);
      const lines = text.stdout.trim().split('\n');
      assert.equal(lines.length, 2);
      assert.match(
        lines[0] ?? '',
        /^\S+\tNAF\trana\.admin\tquery\.run\twidows-with-vehicles\tdvld_vehicles\.vehicle_type$/,
      );
      assert.match(
        lines[1] ?? '',
        /\tNAF\tnaf-0a0b0c0d\tapi\.call\t\/api\/v1\/persons\/\d+\tcspd_personal_info\.first_name,cspd_personal_info\.gender$/,
      );

      const json = JSON.parse(
        (await hub('audit', 'who-read', person, '--json', '--limit', '1')).stdout,
      ) as WhoReadRow[];
      assert.deepEqual(
        json.map((r) => [r.actor, r.columns]),
        [['rana.admin', ['dvld_vehicles.vehicle_type']]],
      );
      const nobody = await hub('audit', 'who-read', validId(779));
      assert.equal(nobody.stdout.trim(), `no recorded reads of ${validId(779)}`);
    });

    it('verify exits 1 naming a who-read index that lost a row, which would hide a read', async () => {
      await indexWhoRead(ctx.knex, { flushTail: true });
      const person = validId(777);
      const row = await ctx
        .knex(WHO_READ_TABLE)
        .where({ national_id: person })
        .orderBy('audit_id', 'desc')
        .first<{ run: number | string; national_id: string; audit_id: number | string }>('*');
      await ctx.knex(WHO_READ_TABLE).where(row).delete();
      const hidden = JSON.parse((await hub('audit', 'who-read', person, '--json')).stdout) as WhoReadRow[];
      assert.equal(hidden.length, 1, 'the read is gone from who-read');

      const broken = await hub('audit', 'verify');
      assert.equal(broken.code, 1);
      assert.match(
        broken.stderr,
        new RegExp(`^hub: who-read index: run ${row.run} lacks 1 subject rows`, 'm'),
      );
      await ctx.knex(WHO_READ_TABLE).insert(row);
      assert.equal((await hub('audit', 'verify')).code, 0);
    });
  });
});
