import Database from 'better-sqlite3';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { buildNationalId } from '../../warehouse/core/national-id.ts';

/** National IDs that pass the demo rule, distinct per n. */
export const validId = (n: number) => buildNationalId(String(100_000_000 + n));

/** A wrong check digit on an otherwise valid ID. */
export const badCheckDigitId = (n: number) => {
  const id = validId(n);
  return id.slice(0, 9) + String((Number(id[9]) + 1) % 10);
};

export interface PersonSourceRow {
  NATNO: string;
  NAME_AR: string | null;
  SEX: string;
  DOB: string;
  UPDATED_AT: string;
  DELETED: number;
}

/** A civil-status-like source system in SQLite, with its own column names and formats. */
export function writePeopleSource(file: string, rows: PersonSourceRow[]): void {
  const db = new Database(file);
  db.exec(
    `CREATE TABLE IF NOT EXISTS people (NATNO TEXT, NAME_AR TEXT, SEX TEXT, DOB TEXT, UPDATED_AT TEXT, DELETED INTEGER)`,
  );
  const insert = db.prepare(
    'INSERT INTO people VALUES (@NATNO, @NAME_AR, @SEX, @DOB, @UPDATED_AT, @DELETED)',
  );
  db.transaction(() => rows.forEach((r) => insert.run(r)))();
  db.close();
}

export function execOnSource(file: string, sql: string, ...params: unknown[]): void {
  const db = new Database(file);
  db.prepare(sql).run(...params);
  db.close();
}

export async function writeDefinition(dir: string, name: string, definition: unknown): Promise<string> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  await writeFile(file, JSON.stringify(definition, null, 2));
  return file;
}

export function peopleDefinition(sourceFile: string, overrides: Record<string, unknown> = {}) {
  return {
    name: 'reg-people',
    entity: 'REG',
    entity_label: { en: 'Civil registry', ar: 'السجل المدني' },
    target: { table: 'reg_people', label: { en: 'People', ar: 'الأشخاص' } },
    source: {
      kind: 'sql',
      client: 'better-sqlite3',
      connection: { filename: sourceFile },
      table: 'people',
      cursor: 'UPDATED_AT',
      deleted_flag: { column: 'DELETED', value: 1 },
    },
    mode: 'incremental',
    columns: {
      national_id: { from: 'NATNO', required: true },
      full_name: { from: 'NAME_AR', required: true, label: { en: 'Full name', ar: 'الاسم الكامل' } },
      gender: { from: 'SEX', codes: { '1': 'M', '2': 'F' } },
      birth_date: { from: 'DOB', type: 'date', format: 'DD/MM/YYYY' },
    },
    batch_size: 3,
    ...overrides,
  };
}

/**
 * Registries of national IDs only, for tests of the person key: each reads the `people` table
 * (ID, NID) of `<name>.sqlite` in `sourceDir` and loads it in full, two rows a batch.
 */
export const idRegistry = {
  /** The source holds exactly these IDs, in this order (a vehicle registry may list one twice). */
  setIds(sourceDir: string, name: string, ids: string[]): void {
    const source = new Database(path.join(sourceDir, `${name}.sqlite`));
    source.exec('CREATE TABLE IF NOT EXISTS people (ID INTEGER PRIMARY KEY, NID TEXT); DELETE FROM people');
    const insert = source.prepare('INSERT INTO people (NID) VALUES (?)');
    for (const id of ids) insert.run(id);
    source.close();
  },

  /** An empty source and the connector reading it into `table`, keyed by `key`. */
  async define(connectorsDir: string, sourceDir: string, name: string, table: string, key: string[]) {
    idRegistry.setIds(sourceDir, name, []);
    await writeDefinition(connectorsDir, name, {
      name,
      entity: 'REG',
      target: { table, key },
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: { filename: path.join(sourceDir, `${name}.sqlite`) },
        table: 'people',
      },
      mode: 'full',
      columns: {
        id: { from: 'ID', type: 'integer', required: true },
        national_id: { from: 'NID', required: true },
      },
      batch_size: 2,
    });
  },
};

/** A connector definition that only puts its table in the catalog: its CSV source is never read. */
export const catalogOnlyDefinition = (name: string, entity: string, table: string, columns: string[]) => ({
  name,
  entity,
  source: { kind: 'csv', path: `${name}.csv` },
  target: { table },
  columns: Object.fromEntries(columns.map((c) => [c, c === 'national_id' ? { required: true } : {}])),
});

/**
 * The two registries the privilege tests grant on, catalog only: CSPD's `cspd_people` (national_id,
 * full_name, gender, birth_date) and SSC's `ssc_insured`, whose columns each test names because
 * what a revoke leaves of a whole-table grant depends on them.
 */
export async function writeGrantRegistries(connectorsDir: string, insuredColumns: string[]): Promise<void> {
  await writeDefinition(
    connectorsDir,
    'ssc-insured',
    catalogOnlyDefinition('ssc-insured', 'SSC', 'ssc_insured', insuredColumns),
  );
  await writeDefinition(
    connectorsDir,
    'cspd-people',
    catalogOnlyDefinition('cspd-people', 'CSPD', 'cspd_people', [
      'national_id',
      'full_name',
      'gender',
      'birth_date',
    ]),
  );
}
