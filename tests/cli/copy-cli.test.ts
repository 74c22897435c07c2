import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { copyFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import Database from 'better-sqlite3';
import { readConnectorDefinitions } from '../../connectors/definition.ts';
import { runConnector } from '../../connectors/run-connector.ts';
import { buildApp } from '../../server/app.ts';
import { closeContext, type AppContext } from '../../server/context.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';
import { createDemo } from '../../server/services/demo-service.ts';
import { seedDemoAccess } from '../../server/services/demo-access.ts';
import type { ClientCredentials } from '../../server/services/client-service.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../../warehouse/db.ts';
import { callApi } from '../support/api-hub.ts';
import { createTempDir, testDatabases, type TestDatabase } from '../support/databases.ts';
import { openTestContext } from '../support/hub-context.ts';
import { validId, writeDefinition } from '../support/registry-fixture.ts';
import { runHubCli } from '../support/run-hub-cli.ts';
import { countAuditRows } from '../support/audit-rows.ts';

const sqliteDb = testDatabases.find((d) => d.name === 'sqlite')!;
const postgresDb = testDatabases.find((d) => d.name === 'postgres')!;

/** Values a copy must not bend: control characters, quotes, Arabic with marks, emoji, extreme numbers, nulls. */
const EDGE_CSV = [
  'ID,NOTE,AMOUNT,COUNT,FLAG,DAY',
  `${validId(201)},"tab\there ""quoted"" back\\slash\nsecond line",0.30000000000000004,9007199254740991,1,1900-02-28`,
  `${validId(202)},"مُحَمَّد بن عبد الله 🌙 \\N",1e-300,-42,0,2099-12-31`,
  `${validId(203)},,,,,`,
].join('\n');

async function addEdgeRegistry(ctx: AppContext, dir: string): Promise<void> {
  const file = path.join(dir, 'edge-values.csv');
  await writeFile(file, EDGE_CSV);
  await writeDefinition(ctx.config.connectorsDir, 'edg-values', {
    name: 'edg-values',
    entity: 'EDG',
    entity_label: { en: 'Edge cases', ar: 'حالات حدية' },
    target: { table: 'edg_values', label: { en: 'Values', ar: 'القيم' } },
    source: { kind: 'csv', path: file },
    columns: {
      national_id: { from: 'ID', required: true },
      note: { from: 'NOTE', type: 'text', trim: false },
      amount: { from: 'AMOUNT', type: 'number' },
      count: { from: 'COUNT', type: 'integer' },
      flag: { from: 'FLAG', type: 'boolean' },
      day: { from: 'DAY', type: 'date' },
    },
  });
  const def = (await readConnectorDefinitions(ctx.config.connectorsDir)).find(
    (d) => d.name === 'edg-values',
  )!;
  await prepareWarehouse(ctx);
  const summary = await runConnector(def, ctx, { full: true });
  assert.equal(summary.status, 'succeeded', summary.error ?? '');
  assert.equal(summary.inserted, 3);
}

async function listen(ctx: AppContext): Promise<{ baseUrl: string; stop(): Promise<void> }> {
  const server: Server = createServer(buildApp(ctx)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async stop() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

interface ApiAnswers {
  person: unknown;
  queries: unknown;
  page: unknown;
}

/** What a consuming system sees with its own credentials: a person, its saved queries, a page of one. */
async function fetchApiAnswers(
  ctx: AppContext,
  client: ClientCredentials,
  nationalId: string,
): Promise<ApiAnswers> {
  const hub = await listen(ctx);
  try {
    const token = await callApi(hub.baseUrl, 'POST', '/api/v1/token', {
      json: { grant_type: 'client_credentials', ...client },
    });
    assert.equal(token.status, 200, token.text);
    const auth = { token: (token.body as { access_token: string }).access_token };
    const person = await callApi(hub.baseUrl, 'GET', `/api/v1/persons/${nationalId}`, auth);
    const queries = await callApi(hub.baseUrl, 'GET', '/api/v1/queries', auth);
    const page = await callApi(hub.baseUrl, 'POST', '/api/v1/queries/widows-with-vehicles', {
      ...auth,
      json: { params: { born_before: '1990-12-31' }, page_size: 50 },
    });
    for (const res of [person, queries, page]) assert.equal(res.status, 200, res.text);
    return { person: person.body, queries: queries.body, page: page.body };
  } finally {
    await hub.stop();
  }
}

async function fetchTableNames(warehouse: Warehouse): Promise<string[]> {
  const rows =
    warehouse.dialect === 'sqlite'
      ? await warehouse.knex.raw<Array<{ name: string }>>(
          // hub_person_tables is a view: compared with the rows it shows, like a table.
          "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%'",
        )
      : (
          await warehouse.knex.raw<{ rows: Array<{ name: string }> }>(
            "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type IN ('BASE TABLE', 'VIEW')",
          )
        ).rows;
  // Each warehouse keeps the record of its own migrations.
  return rows
    .map((r) => r.name)
    .filter((n) => !n.startsWith('hub_migrations'))
    .sort();
}

type Canonical = (value: unknown) => unknown;

/** PostgreSQL's declared type decides what a value means, so SQLite's 1 and PostgreSQL's true compare equal. */
async function fetchCanonicalizers(pgWarehouse: Warehouse, table: string): Promise<Map<string, Canonical>> {
  const { rows } = await pgWarehouse.knex.raw<{ rows: Array<{ column_name: string; data_type: string }> }>(
    'SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ?',
    [table],
  );
  const byType = (type: string): Canonical => {
    if (type === 'boolean') return (v) => v === true || v === 1 || v === '1' || v === 't';
    if (['bigint', 'integer', 'smallint'].includes(type)) return (v) => String(v);
    if (type === 'double precision' || type === 'real') return (v) => Number(v);
    return (v) => String(v);
  };
  return new Map(rows.map((r) => [r.column_name, byType(r.data_type)]));
}

interface TableSum {
  rows: number;
  checksum: string;
}

/** Every table's row count and a hash of its rows, each row in a canonical form, rows sorted. */
async function fetchChecksums(
  warehouse: Warehouse,
  pgWarehouse: Warehouse,
): Promise<Record<string, TableSum>> {
  const sums: Record<string, TableSum> = {};
  for (const table of await fetchTableNames(warehouse)) {
    const canonical = await fetchCanonicalizers(pgWarehouse, table);
    const rows = await warehouse.knex(table).select<Array<Record<string, unknown>>>('*');
    const lines = rows
      .map((row) =>
        JSON.stringify(
          Object.keys(row)
            .sort()
            .map((c) => [c, row[c] === null ? null : (canonical.get(c) ?? String)(row[c])]),
        ),
      )
      .sort();
    sums[table] = {
      rows: rows.length,
      checksum: createHash('sha256').update(lines.join('\n')).digest('hex'),
    };
  }
  return sums;
}

describe('hub copy: a whole hub from SQLite to PostgreSQL and back', function () {
  this.timeout(180_000);
  let dir: string;
  let sourceUrl: string;
  let targetUrl: string;
  let client: ClientCredentials;
  let sourceAnswers: ApiAnswers;
  let personId: string;
  let target: Warehouse;
  let source: Warehouse;
  const created: Array<{ db: TestDatabase; url: string }> = [];
  const createUrl = async (db: TestDatabase) => {
    const url = await db.createUrl();
    created.push({ db, url });
    return url;
  };
  const hub = (...args: string[]) => runHubCli(args, { HUB_DATA_DIR: dir });

  before(async () => {
    dir = await createTempDir('hub-copy-');
    sourceUrl = await createUrl(sqliteDb);
    targetUrl = await createUrl(postgresDb);
    const ctx = openTestContext(sourceUrl, dir);
    try {
      await prepareWarehouse(ctx);
      const loads = await createDemo(ctx, { persons: 300, seed: 7, load: true }, () => undefined);
      assert.ok(loads.every((s) => s.status === 'succeeded'));
      client = (await seedDemoAccess(ctx)).client;
      await addEdgeRegistry(ctx, dir);
      // A widow who owns a vehicle: her lookup returns rows of several granted tables.
      const widow = await ctx
        .knex('cspd_personal_info as p')
        .join('dvld_vehicles as v', 'v.national_id', 'p.national_id')
        .where('p.marital_status', 'W')
        .first<{ national_id: string }>('p.national_id');
      personId = widow.national_id;
      sourceAnswers = await fetchApiAnswers(ctx, client, personId);
    } finally {
      await closeContext(ctx);
    }
    source = openWarehouse(sourceUrl);
    target = openWarehouse(targetUrl);
  });

  after(async () => {
    await closeWarehouse(source);
    await closeWarehouse(target);
    for (const { db, url } of created) await db.dropUrl(url);
    await rm(dir, { recursive: true, force: true });
  });

  it('copies every table row for row, value for value, and the audit chain verifies on the target', async () => {
    const result = await hub('copy', '--db', sourceUrl, '--to', targetUrl);
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /^copied \d+ tables, [\d,]+ rows from sqlite:.* to postgres:\/\//m);
    assert.match(result.stdout, /^ {2}edg_values +3 rows {2}\(registry\)$/m);

    const sourceSums = await fetchChecksums(source, target);
    const targetSums = await fetchChecksums(target, target);
    assert.deepEqual(Object.keys(targetSums), Object.keys(sourceSums));
    for (const table of [
      'hub_audit',
      'hub_audit_subjects',
      'hub_grants',
      'hub_clients',
      'hub_users',
      'hub_queries',
    ]) {
      assert.ok((sourceSums[table]?.rows ?? 0) > 0, `the source hub has rows in ${table}`);
    }
    assert.deepEqual(targetSums, sourceSums);

    const edge = await target
      .knex('edg_values')
      .orderBy('national_id')
      .select('note', 'amount', 'count', 'flag', 'day');
    assert.deepEqual(edge, [
      {
        note: 'tab\there "quoted" back\\slash\nsecond line',
        amount: 0.30000000000000004,
        count: '9007199254740991',
        flag: true,
        day: '1900-02-28',
      },
      { note: 'مُحَمَّد بن عبد الله 🌙 \\N', amount: 1e-300, count: '-42', flag: false, day: '2099-12-31' },
      { note: null, amount: null, count: null, flag: null, day: null },
    ]);

    const verify = await hub('audit', 'verify', '--db', targetUrl);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout.trim(), new RegExp(`^audit chain ok: ${sourceSums.hub_audit!.rows} rows;`));
  });

  it('answers the same API calls with the same client credentials, and keeps appending to the chain', async () => {
    const ctx = openTestContext(targetUrl, dir);
    try {
      const copied = await fetchApiAnswers(ctx, client, personId);
      assert.deepEqual(copied, sourceAnswers);
      assert.ok(Object.keys((copied.person as { tables: object }).tables).length >= 2);
      assert.ok((copied.page as { rows: unknown[] }).rows.length > 0);
    } finally {
      await closeContext(ctx);
    }
    const [copiedRows, targetRows] = [await countAuditRows(source.knex), await countAuditRows(target.knex)];
    assert.ok(targetRows > copiedRows, 'the calls on the target were audited after the copied rows');
    const verify = await hub('audit', 'verify', '--db', targetUrl);
    assert.equal(verify.code, 0, verify.stderr);
    assert.match(verify.stdout.trim(), new RegExp(`^audit chain ok: ${targetRows} rows;`));
  });

  it('refuses a target that already holds data, changing nothing, unless --force', async () => {
    const held = await fetchChecksums(target, target);
    const refused = await hub('copy', '--db', sourceUrl, '--to', targetUrl);
    assert.equal(refused.code, 1);
    assert.match(
      refused.stderr,
      /^hub: the target postgres:\/\/\S+ already holds data \(.+\); use --force to replace it$/m,
    );
    assert.equal(refused.stdout, '');
    assert.deepEqual(await fetchChecksums(target, target), held);

    const forced = await hub('copy', '--db', sourceUrl, '--to', targetUrl, '--force');
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(await fetchChecksums(target, target), await fetchChecksums(source, target));
  });

  it('copies PostgreSQL back to a new SQLite file with the same rows and a verifying chain', async () => {
    const backUrl = `sqlite:${path.join(dir, 'back', 'hub.sqlite')}`;
    const result = await hub('copy', '--db', targetUrl, '--to', backUrl);
    assert.equal(result.code, 0, result.stderr);
    const back = openWarehouse(backUrl);
    try {
      assert.deepEqual(await fetchChecksums(back, target), await fetchChecksums(target, target));
    } finally {
      await closeWarehouse(back);
    }
    const verify = await hub('audit', 'verify', '--db', backUrl);
    assert.equal(verify.code, 0, verify.stderr);
  });

  describe('bad input fails with a hub: message and writes nothing', () => {
    let emptyUrl: string;
    let empty: Warehouse;

    before(async () => {
      emptyUrl = await createUrl(postgresDb);
      empty = openWarehouse(emptyUrl);
    });
    after(() => closeWarehouse(empty));

    const assertUntouched = async () => assert.deepEqual(await fetchTableNames(empty), []);

    it('an unreachable target, without showing its password', async () => {
      const result = await hub(
        'copy',
        '--db',
        sourceUrl,
        '--to',
        'postgres://hub:s3cret@127.0.0.1:1/hub_test_none',
      );
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /^hub: cannot open the target postgres:\/\/hub:\*\*\*@127\.0\.0\.1:1\/hub_test_none: .*ECONNREFUSED/,
      );
      assert.doesNotMatch(result.stderr, /s3cret|\n\s+at /);
    });

    it('a source that does not exist, is not a database, or is a database but not a hub', async () => {
      const missing = path.join(dir, 'missing.sqlite');
      const notDatabase = path.join(dir, 'notes.sqlite');
      await writeFile(notDatabase, 'these are notes, not a database\n');
      const otherDatabase = path.join(dir, 'other.sqlite');
      const other = new Database(otherDatabase);
      other.exec(
        "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO people (name) VALUES ('x')",
      );
      other.close();
      for (const [file, why] of [
        [missing, /the file does not exist/],
        [notDatabase, /file is not a database/],
        [otherDatabase, /it has no hub_migrations or hub_tables table/],
      ] as const) {
        const result = await hub('copy', '--db', `sqlite:${file}`, '--to', emptyUrl);
        assert.equal(result.code, 1, file);
        assert.match(result.stderr, /^hub: the source sqlite:\S+ is not a Registry Hub warehouse: /);
        assert.match(result.stderr, why);
        await assertUntouched();
      }
      assert.equal(existsSync(missing), false, 'the missing source was not created');
      const db = new Database(otherDatabase, { readonly: true });
      assert.deepEqual(
        db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").pluck().all(),
        ['people'],
        'the other database was not migrated',
      );
      db.close();
    });

    it('a value the target refuses half-way rolls the whole copy back', async () => {
      const brokenFile = path.join(dir, 'broken.sqlite');
      await copyFile(sourceUrl.slice('sqlite:'.length), brokenFile);
      const db = new Database(brokenFile);
      // SQLite does not enforce varchar sizes; PostgreSQL does, after every hub table was written.
      db.prepare(
        'UPDATE ssc_insured SET employer_name = ? WHERE rowid = (SELECT max(rowid) FROM ssc_insured)',
      ).run('x'.repeat(300));
      db.close();
      const result = await hub('copy', '--db', `sqlite:${brokenFile}`, '--to', emptyUrl);
      assert.equal(result.code, 1);
      assert.match(
        result.stderr,
        /^hub: copying ssc_insured: value too long for type character varying\(255\); the target is left as it was$/m,
      );
      await assertUntouched();
    });

    it('a new SQLite target file is removed when the copy fails', async () => {
      const file = path.join(dir, 'never', 'hub.sqlite');
      const result = await hub(
        'copy',
        '--db',
        `sqlite:${path.join(dir, 'other.sqlite')}`,
        '--to',
        `sqlite:${file}`,
      );
      assert.equal(result.code, 1);
      assert.match(result.stderr, /is not a Registry Hub warehouse/);
      assert.equal(existsSync(file), false);
    });

    it('the source itself as the target, however its URL is spelled, even with --force', async () => {
      const file = sourceUrl.slice('sqlite:'.length);
      const sameFile = `sqlite:${path.dirname(file)}/../${path.basename(path.dirname(file))}/./${path.basename(file)}`;
      const sqlite = await hub('copy', '--db', sourceUrl, '--to', sameFile, '--force');
      assert.equal(sqlite.code, 1);
      assert.match(sqlite.stderr, /^hub: the source and the target are the same warehouse/);
      const held = await fetchChecksums(target, target);
      const postgres = await hub(
        'copy',
        '--db',
        targetUrl,
        '--to',
        targetUrl.replace(/^postgres:/, 'postgresql:'),
        '--force',
      );
      assert.equal(postgres.code, 1);
      assert.match(
        postgres.stderr,
        /^hub: the target postgresql:\/\/\S+ is the source, or the source of another copy running now$/m,
      );
      assert.deepEqual(await fetchChecksums(target, target), held);
    });
  });
});
