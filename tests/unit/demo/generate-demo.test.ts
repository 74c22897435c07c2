import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { parse as parseCsv } from 'csv-parse/sync';
import iconv from 'iconv-lite';
import { readConnectorDefinitions, type ConnectorDefinition } from '../../../connectors/definition.ts';
import { generateDemo, type DemoManifest } from '../../../connectors/demo/generate-demo.ts';
import { resolveDefinitionPath } from '../../../connectors/resolve-path.ts';
import { DEFAULT_NATIONAL_ID_RULE, explainInvalidNationalId } from '../../../warehouse/core/national-id.ts';

const PERSONS = 500;
const CONNECTOR_TABLES: Record<string, string> = {
  'cspd-births': 'cspd_births',
  'cspd-deaths': 'cspd_deaths',
  'cspd-personal-info': 'cspd_personal_info',
  'dvld-vehicles': 'dvld_vehicles',
  'moe-students': 'moe_students',
  'naf-households': 'naf_households',
  'ssc-insured': 'ssc_insured',
};

async function listFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath, e.name)))
    .sort();
}

/** Every source record of a connector, with the source's own field names. */
async function readSourceRecords(def: ConnectorDefinition): Promise<Record<string, unknown>[]> {
  const source = def.source;
  if (source.kind === 'sql') {
    const filename = typeof source.connection === 'string' ? source.connection : source.connection.filename;
    assert.equal(typeof filename, 'string', `${def.name}: connection.filename`);
    const db = new Database(resolveDefinitionPath(def, filename as string), {
      readonly: true,
      fileMustExist: true,
    });
    try {
      return db.prepare(`SELECT * FROM ${source.table!}`).all() as Record<string, unknown>[];
    } finally {
      db.close();
    }
  }
  assert.equal(source.kind, 'csv');
  const text = iconv.decode(await readFile(resolveDefinitionPath(def, source.path)), source.encoding);
  return parseCsv<Record<string, unknown>>(text, { columns: true, delimiter: source.delimiter });
}

describe('demo country generator', function () {
  let root: string;
  let first: string;
  let second: string;
  let otherSeed: string;
  let manifest: DemoManifest;
  let definitions: ConnectorDefinition[];

  before(async function () {
    root = await mkdtemp(path.join(tmpdir(), 'hub-demo-'));
    first = path.join(root, 'first');
    second = path.join(root, 'second');
    otherSeed = path.join(root, 'other-seed');
    manifest = await generateDemo({ dir: first, persons: PERSONS, seed: 42 });
    await generateDemo({ dir: second, persons: PERSONS, seed: 42 });
    await generateDemo({ dir: otherSeed, persons: PERSONS, seed: 43 });
    definitions = await readConnectorDefinitions(path.join(first, 'connectors'));
  });

  after(async function () {
    await rm(root, { recursive: true, force: true });
  });

  it('writes byte-identical files for the same persons and seed', async function () {
    const files = await listFiles(first);
    assert.deepEqual(await listFiles(second), files);
    assert.ok(files.includes('manifest.json') && files.includes(path.join('sources', 'cspd.sqlite')));
    for (const file of files) {
      const [a, b] = await Promise.all([readFile(path.join(first, file)), readFile(path.join(second, file))]);
      assert.ok(a.equals(b), `${file} differs between two runs with the same seed`);
    }
  });

  it('writes other registries for another seed', async function () {
    for (const file of await listFiles(path.join(first, 'sources'))) {
      const [a, b] = await Promise.all([
        readFile(path.join(first, 'sources', file)),
        readFile(path.join(otherSeed, 'sources', file)),
      ]);
      assert.ok(!a.equals(b), `${file} is the same for seeds 42 and 43`);
    }
  });

  it('writes one valid, labelled connector definition per warehouse table', function () {
    assert.deepEqual(Object.fromEntries(definitions.map((d) => [d.name, d.target.table])), CONNECTOR_TABLES);
    for (const def of definitions) {
      assert.equal(Object.keys(def.columns)[0], 'national_id', `${def.name}: national_id comes first`);
      assert.ok(
        def.entity_label && def.target.label && def.schedule && def.description,
        `${def.name}: labels`,
      );
      for (const [column, mapping] of Object.entries(def.columns)) {
        assert.ok(
          mapping.label?.en && mapping.label.ar,
          `${def.name}.${column} has English and Arabic labels`,
        );
      }
    }
    const personal = definitions.find((d) => d.name === 'cspd-personal-info')!;
    assert.equal(personal.mode, 'incremental');
    assert.equal(personal.source.cursor, 'UPDATED_AT');
    assert.deepEqual(personal.source.deleted_flag, { column: 'IS_DELETED', value: 1 });
  });

  it('counts in the manifest exactly what the source files hold', async function () {
    assert.equal(manifest.persons, PERSONS);
    assert.equal(manifest.seed, 42);
    assert.deepEqual(JSON.parse(await readFile(path.join(first, 'manifest.json'), 'utf8')), manifest);
    assert.deepEqual(Object.keys(manifest.connectors).sort(), Object.keys(CONNECTOR_TABLES));
    for (const def of definitions) {
      const counts = manifest.connectors[def.name]!;
      const records = await readSourceRecords(def);
      const flag = def.source.deleted_flag;
      const deleted =
        flag === undefined ? 0 : records.filter((r) => String(r[flag.column]) === String(flag.value)).length;
      assert.equal(counts.table, def.target.table);
      assert.equal(counts.source_rows, records.length, `${def.name}: source rows`);
      assert.ok(counts.bad_rows >= 2, `${def.name}: at least two bad rows`);
      assert.equal(
        counts.expected_rows,
        counts.source_rows - counts.bad_rows - deleted,
        `${def.name}: expected rows`,
      );
    }
    assert.equal(manifest.connectors['cspd-personal-info']!.expected_rows, PERSONS);
  });

  it('counts CSV rows as lines of the files', async function () {
    for (const [file, connector] of [
      ['ssc_insured.csv', 'ssc-insured'],
      ['dvld_vehicles.csv', 'dvld-vehicles'],
      ['naf_households.csv', 'naf-households'],
    ] as const) {
      const lines = (await readFile(path.join(first, 'sources', file), 'latin1'))
        .split(/\r?\n/)
        .filter((l) => l !== '');
      assert.equal(lines.length - 1, manifest.connectors[connector]!.source_rows, file);
    }
  });

  it('gives every good row a valid national ID and every citizen a unique one', async function () {
    for (const def of definitions) {
      const field = def.columns[def.target.national_id]!.from!;
      const records = await readSourceRecords(def);
      const invalid = records.filter(
        (r) => explainInvalidNationalId(String(r[field]), DEFAULT_NATIONAL_ID_RULE) !== null,
      ).length;
      assert.ok(invalid >= 1, `${def.name}: some bad rows carry a bad national ID`);
      assert.ok(invalid <= manifest.connectors[def.name]!.bad_rows, `${def.name}: ${invalid} invalid IDs`);
    }
    const citizens = await readSourceRecords(definitions.find((d) => d.name === 'cspd-personal-info')!);
    const ids = citizens.map((r) => String(r.NATNO));
    assert.equal(new Set(ids).size, ids.length);
  });

  it('encodes the vehicle registry in windows-1256', async function () {
    const bytes = await readFile(path.join(first, 'sources', 'dvld_vehicles.csv'));
    assert.ok(bytes.toString('utf8').includes('\uFFFD'), 'the file is not UTF-8');
    const text = iconv.decode(bytes, 'windows-1256');
    assert.match(text, /سيارة ركوب/);
    assert.match(text, /خصوصي/);
  });
});
