import assert from 'node:assert/strict';
import { access, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { buildConnectorDefinition } from '../../../connectors/definition.ts';
import type { ConnectorDefinition } from '../../../connectors/definition.ts';
import { openSource } from '../../../connectors/sources/open-source.ts';
import type { ReadOptions, Source, SourceRecord } from '../../../connectors/sources/source.ts';

const people = [
  {
    national_id: '9871000001',
    full_name: 'محمد عبد الله',
    governorate: 'عمّان',
    updated_at: '2024-03-01T10:00:00Z',
  },
  {
    national_id: '9871000002',
    full_name: 'فاطمة الزهراء',
    governorate: 'إربد',
    updated_at: '2024-01-15T08:30:00Z',
  },
  {
    national_id: '9871000003',
    full_name: 'عليّ بن حسين',
    governorate: 'عمّان',
    updated_at: '2024-02-20T12:00:00Z',
  },
  {
    national_id: '9871000004',
    full_name: 'سارة يوسف',
    governorate: 'الزرقاء',
    updated_at: '2024-04-02T09:15:00Z',
  },
];

const deletions = [
  { national_id: '9871000090', deleted_at: '2024-02-01T00:00:00Z', reason: 'deceased' },
  { national_id: '9871000091', deleted_at: '2024-03-10T00:00:00Z', reason: 'duplicate' },
];

function createRegistry(file: string): void {
  const db = new Database(file);
  try {
    db.exec(`create table people (national_id text primary key, full_name text, governorate text, updated_at text);
             create table people_deleted (national_id text, deleted_at text, reason text);`);
    const insertPerson = db.prepare(
      'insert into people values (@national_id, @full_name, @governorate, @updated_at)',
    );
    for (const p of people) insertPerson.run(p);
    const insertDeletion = db.prepare(
      'insert into people_deleted values (@national_id, @deleted_at, @reason)',
    );
    for (const d of deletions) insertDeletion.run(d);
  } finally {
    db.close();
  }
}

async function collect(records: AsyncIterable<SourceRecord>): Promise<SourceRecord[]> {
  const out: SourceRecord[] = [];
  for await (const record of records) out.push(record);
  return out;
}

const ids = (records: SourceRecord[]) => records.map((r) => r.national_id);

describe('SQL source (SQLite)', () => {
  let folder: string;
  const opened: Source[] = [];

  before(async () => {
    folder = await mkdtemp(path.join(os.tmpdir(), 'sql-source-'));
    createRegistry(path.join(folder, 'registry.sqlite'));
  });

  afterEach(async () => {
    for (const source of opened.splice(0)) await source.close();
  });

  after(async () => {
    await rm(folder, { recursive: true, force: true });
  });

  /** The definition file sits in the temp folder, so a relative filename resolves beside it. */
  function open(source: Record<string, unknown>): Source {
    const raw = {
      name: 'cspd-people',
      entity: 'CSPD',
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: { filename: 'registry.sqlite' },
        ...source,
      },
      target: { table: 'cspd_people' },
      columns: { national_id: { type: 'string' } },
    };
    const def: ConnectorDefinition = buildConnectorDefinition(raw, path.join(folder, 'cspd-people.yaml'));
    const opening = openSource(def);
    opened.push(opening);
    return opening;
  }

  const all: ReadOptions = { since: null };

  it('reads a whole table with Arabic text intact, ordered by the cursor', async () => {
    const records = await collect(open({ table: 'people', cursor: 'updated_at' }).read(all));
    const byCursor = [...people].sort((a, b) => a.updated_at.localeCompare(b.updated_at));
    assert.deepEqual(records, byCursor);
  });

  it('reads a table without a cursor', async () => {
    const records = await collect(open({ table: 'people' }).read(all));
    assert.deepEqual(ids(records).sort(), ids(people).sort());
  });

  it('reads a query as a subquery, cursor filter and all', async () => {
    const source = open({
      query:
        "select national_id, full_name, updated_at from people where governorate = 'عمّان' and full_name <> '?';",
      cursor: 'updated_at',
    });
    assert.deepEqual(ids(await collect(source.read(all))), ['9871000003', '9871000001']);
    const since = await collect(source.read({ since: '2024-02-20T12:00:00Z' }));
    assert.deepEqual(since, [
      { national_id: '9871000001', full_name: 'محمد عبد الله', updated_at: '2024-03-01T10:00:00Z' },
    ]);
  });

  it('reads only rows past the watermark, in cursor order', async () => {
    const records = await collect(
      open({ table: 'people', cursor: 'updated_at' }).read({ since: '2024-01-15T08:30:00Z' }),
    );
    assert.deepEqual(ids(records), ['9871000003', '9871000001', '9871000004']);
  });

  it("orders by the cursor column's own collation, also when the cursor is indexed", async () => {
    const db = new Database(path.join(folder, 'registry.sqlite'));
    try {
      db.exec(`create table batches (batch_no text collate nocase, national_id text);
               create index batches_by_no on batches (batch_no);
               insert into batches values ('b-02', '9871000001'), ('B-01', '9871000002'), ('a-03', '9871000003');`);
    } finally {
      db.close();
    }
    const source = open({ table: 'batches', cursor: 'batch_no' });
    const expected = ['9871000003', '9871000002', '9871000001'];
    assert.deepEqual(ids(await collect(source.read(all))), expected);
    const chunks: unknown[][] = [];
    for await (const chunk of source.readChunks!(all, 2)) chunks.push(...chunk.rows);
    assert.deepEqual(
      chunks.map((row) => row[1]),
      expected,
    );
    assert.deepEqual(ids(await collect(source.read({ since: 'A-03' }))), ['9871000002', '9871000001']);
  });

  it('accepts the connection as a bare filename', async () => {
    const records = await collect(open({ connection: 'registry.sqlite', table: 'people' }).read(all));
    assert.equal(records.length, people.length);
  });

  it('reads tombstones keyed by the tombstone table columns', async () => {
    const source = open({
      table: 'people',
      cursor: 'updated_at',
      tombstones: { table: 'people_deleted', key: ['national_id'], cursor: 'deleted_at' },
    });
    const readTombstones = source.readTombstones?.bind(source);
    assert.ok(readTombstones);
    assert.deepEqual(await collect(readTombstones(all)), [
      { national_id: '9871000090', deleted_at: '2024-02-01T00:00:00Z' },
      { national_id: '9871000091', deleted_at: '2024-03-10T00:00:00Z' },
    ]);
    assert.deepEqual(await collect(readTombstones({ since: '2024-02-01T00:00:00Z' })), [
      { national_id: '9871000091', deleted_at: '2024-03-10T00:00:00Z' },
    ]);
  });

  it('has no tombstone reader when the definition names no tombstone table', () => {
    assert.equal('readTombstones' in open({ table: 'people' }), false);
  });

  it('can stop reading part way and then read again', async () => {
    const source = open({ table: 'people', cursor: 'updated_at' });
    for await (const record of source.read(all)) {
      assert.equal(record.national_id, '9871000002');
      break;
    }
    assert.equal((await collect(source.read(all))).length, people.length);
  });

  it('fails a missing database file with an error naming the connector, without creating the file', async () => {
    const source = open({ connection: { filename: 'missing.sqlite' }, table: 'people' });
    await assert.rejects(collect(source.read(all)), /connector cspd-people: better-sqlite3 source failed/);
    await assert.rejects(access(path.join(folder, 'missing.sqlite')), { code: 'ENOENT' });
  });

  it('fails a missing table with an error naming the connector', async () => {
    const source = open({ table: 'no_such_table' });
    await assert.rejects(collect(source.read(all)), /connector cspd-people: .*no such table: no_such_table/);
  });
});
