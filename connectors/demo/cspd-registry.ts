import path from 'node:path';
import type { ConnectorDefinitionInput } from '../definition.ts';
import { drawUpdatedAt, label, type AgencyRegistry, type DemoContext } from './agency-registry.ts';
import { BadRowPlan, impossibleDate, withoutCheckDigit, withWrongCheckDigit } from './bad-rows.ts';
import { civilFromDay, formatCompactDate, formatDashedDate, formatSlashedDate } from './civil-dates.ts';
import { FAMILY_NAMES, FEMALE_FIRST_NAMES, MALE_FIRST_NAMES } from './names.ts';
import type { Household, Person } from './population.ts';
import { REGIONS, regionAt } from './regions.ts';
import { SqliteSourceWriter, type SqlValue } from './sqlite-source-writer.ts';
import { createTally } from './tally.ts';

/** Civil Status and Passports Department: citizens, births and deaths in one SQLite database. */
export const CSPD_SOURCE_FILE = 'cspd.sqlite';

const SCHEMA = `
CREATE TABLE citizens (
  NATNO TEXT NOT NULL, FNAME TEXT, SNAME TEXT, TNAME TEXT, LNAME TEXT, MOTHER_NAME TEXT,
  SEX INTEGER, DOB TEXT, BIRTH_PLACE TEXT, MARITAL_CODE TEXT, HH_NO TEXT,
  UPDATED_AT TEXT NOT NULL, IS_DELETED INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE birth_records (
  REG_NO TEXT, CHILD_NATNO TEXT NOT NULL, MOTHER_NATNO TEXT, FATHER_NATNO TEXT,
  BIRTH_DT TEXT, BIRTH_PLACE TEXT, UPDATED_AT TEXT NOT NULL
);
CREATE TABLE death_records (
  DEATH_REG_NO TEXT, DECEASED_NATNO TEXT NOT NULL, DEATH_DT TEXT, DEATH_PLACE TEXT, CAUSE_CODE TEXT,
  UPDATED_AT TEXT NOT NULL
);`;

const INDEXES = `
CREATE INDEX citizens_updated_at ON citizens (UPDATED_AT);
CREATE INDEX birth_records_updated_at ON birth_records (UPDATED_AT);`;

// prettier-ignore
const CITIZEN_COLUMNS = [
  'NATNO', 'FNAME', 'SNAME', 'TNAME', 'LNAME', 'MOTHER_NAME', 'SEX', 'DOB', 'BIRTH_PLACE', 'MARITAL_CODE', 'HH_NO',
  'UPDATED_AT', 'IS_DELETED',
] as const;
const BIRTH_COLUMNS = [
  'REG_NO',
  'CHILD_NATNO',
  'MOTHER_NATNO',
  'FATHER_NATNO',
  'BIRTH_DT',
  'BIRTH_PLACE',
  'UPDATED_AT',
] as const;
const DEATH_COLUMNS = [
  'DEATH_REG_NO',
  'DECEASED_NATNO',
  'DEATH_DT',
  'DEATH_PLACE',
  'CAUSE_CODE',
  'UPDATED_AT',
] as const;

type CitizenRow = Record<(typeof CITIZEN_COLUMNS)[number], SqlValue>;
type BirthRow = Record<(typeof BIRTH_COLUMNS)[number], SqlValue>;
type DeathRow = Record<(typeof DEATH_COLUMNS)[number], SqlValue>;

const CAUSES_OF_DEATH: readonly string[] = [
  'I21',
  'I25',
  'I50',
  'I64',
  'C34',
  'C50',
  'E11',
  'J18',
  'N18',
  'V89',
];
/** Cancelled registrations (duplicates found later) stay in the table, flagged as deleted. */
const CANCELLED_REGISTRATION_RATE = 0.001;

const CITIZEN_FAULTS = [
  'wrong-check-digit',
  'impossible-birth-date',
  'short-national-id',
  'missing-first-name',
  'unknown-sex',
  'unknown-marital-status',
] as const;
const EVENT_FAULTS = [
  'wrong-check-digit',
  'impossible-date',
  'short-national-id',
  'missing-registration-number',
] as const;

export function openCspdRegistry(ctx: DemoContext): AgencyRegistry {
  const random = ctx.random('cspd');
  const personal = createTally('cspd-personal-info', 'cspd_personal_info');
  const births = createTally('cspd-births', 'cspd_births');
  const deaths = createTally('cspd-deaths', 'cspd_deaths');
  const citizenPlan = new BadRowPlan(ctx.random('bad-rows:cspd-personal-info'), CITIZEN_FAULTS);
  const birthPlan = new BadRowPlan(ctx.random('bad-rows:cspd-births'), EVENT_FAULTS);
  const deathPlan = new BadRowPlan(ctx.random('bad-rows:cspd-deaths'), EVENT_FAULTS);
  const writer = new SqliteSourceWriter(path.join(ctx.sourcesDir, CSPD_SOURCE_FILE), SCHEMA);
  const insertCitizen = writer.prepareInsert('citizens', CITIZEN_COLUMNS);
  const insertBirth = writer.prepareInsert('birth_records', BIRTH_COLUMNS);
  const insertDeath = writer.prepareInsert('death_records', DEATH_COLUMNS);
  let birthNumber = 0;
  let deathNumber = 0;
  let lastPerson: { person: Person; household: Household } | null = null;

  const writeCitizen = (row: CitizenRow) => insertCitizen(CITIZEN_COLUMNS.map((c) => row[c]));
  const writeBirth = (row: BirthRow) => insertBirth(BIRTH_COLUMNS.map((c) => row[c]));
  const writeDeath = (row: DeathRow) => insertDeath(DEATH_COLUMNS.map((c) => row[c]));

  const citizenRow = (person: Person, household: Household): CitizenRow => ({
    NATNO: person.nationalId,
    FNAME: person.firstName,
    SNAME: person.secondName,
    TNAME: person.thirdName,
    LNAME: person.familyName,
    MOTHER_NAME: person.motherName,
    SEX: person.gender === 'M' ? 1 : 2,
    DOB: formatCompactDate(person.birthDay),
    BIRTH_PLACE: regionAt(person.birthPlace).cspdCode,
    MARITAL_CODE: person.maritalStatus,
    HH_NO: household.number,
    UPDATED_AT: drawUpdatedAt(random),
    IS_DELETED: 0,
  });
  const birthRow = (person: Person): BirthRow => ({
    REG_NO: `${civilFromDay(person.birthDay).year}${String(++birthNumber).padStart(7, '0')}`,
    CHILD_NATNO: person.nationalId,
    MOTHER_NATNO: person.motherId,
    FATHER_NATNO: person.fatherId,
    BIRTH_DT: formatSlashedDate(person.birthDay),
    BIRTH_PLACE: regionAt(person.birthPlace).cspdCode,
    UPDATED_AT: drawUpdatedAt(random),
  });
  const deathRow = (person: Person, deathDay: number): DeathRow => ({
    DEATH_REG_NO: `D${civilFromDay(deathDay).year}${String(++deathNumber).padStart(6, '0')}`,
    DECEASED_NATNO: person.nationalId,
    DEATH_DT: formatDashedDate(deathDay),
    DEATH_PLACE: regionAt(random.chance(0.9) ? person.birthPlace : random.int(0, REGIONS.length - 1))
      .cspdCode,
    CAUSE_CODE: random.pick(CAUSES_OF_DEATH),
    UPDATED_AT: drawUpdatedAt(random),
  });

  const writeBadCitizen = (person: Person, household: Household) => {
    const row = citizenRow(person, household);
    const fault = citizenPlan.nextKind();
    if (fault === 'wrong-check-digit') row.NATNO = withWrongCheckDigit(random, person.nationalId);
    else if (fault === 'short-national-id') row.NATNO = withoutCheckDigit(person.nationalId);
    else {
      row.NATNO = ctx.nextGhostId();
      if (fault === 'impossible-birth-date') row.DOB = impossibleDate(random, 'YYYYMMDD');
      if (fault === 'missing-first-name') row.FNAME = null;
      if (fault === 'unknown-sex') row.SEX = 9;
      if (fault === 'unknown-marital-status') row.MARITAL_CODE = 'X';
    }
    writeCitizen(row);
    personal.badRows++;
  };
  const writeCancelledCitizen = (household: Household) => {
    const gender = random.chance(0.5) ? 'M' : 'F';
    writeCitizen({
      ...citizenRow(lastPerson?.person ?? household.members[0]!, household),
      NATNO: ctx.nextGhostId(),
      FNAME: random.pick(gender === 'M' ? MALE_FIRST_NAMES : FEMALE_FIRST_NAMES),
      LNAME: random.pick(FAMILY_NAMES),
      SEX: gender === 'M' ? 1 : 2,
      IS_DELETED: 1,
    });
    personal.deletedRows++;
  };
  const writeBadEvent = (
    plan: BadRowPlan<(typeof EVENT_FAULTS)[number]>,
    person: Person,
    kind: 'birth' | 'death',
  ) => {
    const fault = plan.nextKind();
    const nationalId =
      fault === 'wrong-check-digit'
        ? withWrongCheckDigit(random, person.nationalId)
        : fault === 'short-national-id'
          ? withoutCheckDigit(person.nationalId)
          : ctx.nextGhostId();
    if (kind === 'birth') {
      const row = { ...birthRow(person), CHILD_NATNO: nationalId };
      if (fault === 'impossible-date') row.BIRTH_DT = impossibleDate(random, 'DD/MM/YYYY');
      if (fault === 'missing-registration-number') row.REG_NO = null;
      writeBirth(row);
      births.badRows++;
    } else {
      const row = { ...deathRow(person, person.deathDay ?? person.birthDay + 1), DECEASED_NATNO: nationalId };
      if (fault === 'impossible-date') row.DEATH_DT = impossibleDate(random, 'DD-MM-YYYY');
      if (fault === 'missing-registration-number') row.DEATH_REG_NO = null;
      writeDeath(row);
      deaths.badRows++;
    }
  };

  return {
    addHousehold(household) {
      for (const person of household.members) {
        writeCitizen(citizenRow(person, household));
        personal.sourceRows++;
        if (citizenPlan.shouldFollowGoodRow()) writeBadCitizen(person, household);
        if (random.chance(CANCELLED_REGISTRATION_RATE)) writeCancelledCitizen(household);
        if (person.motherId !== null || person.fatherId !== null) {
          writeBirth(birthRow(person));
          births.sourceRows++;
          if (birthPlan.shouldFollowGoodRow()) writeBadEvent(birthPlan, person, 'birth');
        }
        if (person.deathDay !== null) {
          writeDeath(deathRow(person, person.deathDay));
          deaths.sourceRows++;
          if (deathPlan.shouldFollowGoodRow()) writeBadEvent(deathPlan, person, 'death');
        }
        lastPerson = { person, household };
      }
    },
    flush: () => Promise.resolve(),
    finish() {
      if (lastPerson !== null) {
        const { person, household } = lastPerson;
        while (citizenPlan.shortfall > 0) writeBadCitizen(person, household);
        while (birthPlan.shortfall > 0) writeBadEvent(birthPlan, person, 'birth');
        while (deathPlan.shortfall > 0) writeBadEvent(deathPlan, person, 'death');
        if (personal.deletedRows === 0) writeCancelledCitizen(household);
      }
      writer.close(INDEXES);
      // Bad and cancelled rows are rows of the source too.
      for (const tally of [personal, births, deaths]) tally.sourceRows += tally.badRows + tally.deletedRows;
      return Promise.resolve([personal, births, deaths]);
    },
    abort: () => writer.abort(),
  };
}

const CSPD_LABEL = label('Civil Status and Passports Department', 'دائرة الأحوال المدنية والجوازات');
const CSPD_CONNECTION = { filename: `../sources/${CSPD_SOURCE_FILE}` };
const REGION_CODES = Object.fromEntries(REGIONS.map((r) => [r.cspdCode, r.code]));
const nationalId = (from: string, en: string, ar: string) =>
  ({ from, type: 'string', required: true, length: 10, label: label(en, ar) }) as const;

export function buildCspdConnectors(): ConnectorDefinitionInput[] {
  return [
    {
      name: 'cspd-personal-info',
      entity: 'CSPD',
      entity_label: CSPD_LABEL,
      description:
        'Citizens of the civil register (one row per national ID). Runs every 30 minutes and reads only the rows ' +
        'updated since the last run; cancelled registrations (IS_DELETED = 1) are removed from the warehouse.',
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: CSPD_CONNECTION,
        table: 'citizens',
        cursor: 'UPDATED_AT',
        deleted_flag: { column: 'IS_DELETED', value: 1 },
      },
      target: {
        table: 'cspd_personal_info',
        label: label('Personal information', 'المعلومات الشخصية'),
        key: ['national_id'],
      },
      // widows-with-vehicles: widows (marital status) in national ID order, born before a date.
      indexes: [['marital_status', 'national_id', 'birth_date']],
      mode: 'incremental',
      schedule: '*/30 * * * *',
      columns: {
        national_id: nationalId('NATNO', 'National ID', 'الرقم الوطني'),
        first_name: { from: 'FNAME', required: true, label: label('First name', 'الاسم الأول') },
        second_name: { from: 'SNAME', label: label("Father's name", 'اسم الأب') },
        third_name: { from: 'TNAME', label: label("Grandfather's name", 'اسم الجد') },
        family_name: { from: 'LNAME', required: true, label: label('Family name', 'اسم العائلة') },
        mother_name: { from: 'MOTHER_NAME', label: label("Mother's name", 'اسم الأم') },
        gender: {
          from: 'SEX',
          required: true,
          codes: { '1': 'M', '2': 'F' },
          label: label('Gender', 'الجنس'),
        },
        birth_date: {
          from: 'DOB',
          type: 'date',
          format: 'YYYYMMDD',
          required: true,
          label: label('Date of birth', 'تاريخ الميلاد'),
        },
        birth_place_code: {
          from: 'BIRTH_PLACE',
          codes: REGION_CODES,
          label: label('Place of birth', 'مكان الولادة'),
        },
        marital_status: {
          from: 'MARITAL_CODE',
          codes: { S: 'S', M: 'M', W: 'W', A: 'A', D: 'D' },
          label: label('Marital status', 'الحالة الاجتماعية'),
        },
        household_id: { from: 'HH_NO', label: label('Family book number', 'رقم دفتر العائلة') },
      },
    },
    {
      name: 'cspd-births',
      entity: 'CSPD',
      entity_label: CSPD_LABEL,
      description:
        'Birth registrations with the national IDs of the child and of the parents. Hourly, incremental on UPDATED_AT.',
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: CSPD_CONNECTION,
        table: 'birth_records',
        cursor: 'UPDATED_AT',
      },
      target: {
        table: 'cspd_births',
        label: label('Births', 'المواليد'),
        key: ['birth_registration_number'],
      },
      mode: 'incremental',
      schedule: '5 * * * *',
      columns: {
        national_id: nationalId('CHILD_NATNO', "Child's national ID", 'الرقم الوطني للمولود'),
        mother_national_id: {
          from: 'MOTHER_NATNO',
          length: 10,
          national_id: true,
          label: label("Mother's national ID", 'الرقم الوطني للأم'),
        },
        father_national_id: {
          from: 'FATHER_NATNO',
          length: 10,
          national_id: true,
          label: label("Father's national ID", 'الرقم الوطني للأب'),
        },
        birth_registration_number: {
          from: 'REG_NO',
          required: true,
          label: label('Birth registration number', 'رقم قيد الولادة'),
        },
        birth_date: {
          from: 'BIRTH_DT',
          type: 'date',
          format: 'DD/MM/YYYY',
          required: true,
          label: label('Date of birth', 'تاريخ الولادة'),
        },
        birth_place_code: {
          from: 'BIRTH_PLACE',
          codes: REGION_CODES,
          label: label('Place of birth', 'مكان الولادة'),
        },
      },
    },
    {
      name: 'cspd-deaths',
      entity: 'CSPD',
      entity_label: CSPD_LABEL,
      description: 'Death registrations, one per deceased person. Full load every night.',
      source: { kind: 'sql', client: 'better-sqlite3', connection: CSPD_CONNECTION, table: 'death_records' },
      target: { table: 'cspd_deaths', label: label('Deaths', 'الوفيات'), key: ['national_id'] },
      mode: 'full',
      schedule: '30 1 * * *',
      columns: {
        national_id: nationalId('DECEASED_NATNO', 'National ID of the deceased', 'الرقم الوطني للمتوفى'),
        death_registration_number: {
          from: 'DEATH_REG_NO',
          required: true,
          label: label('Death registration number', 'رقم قيد الوفاة'),
        },
        death_date: {
          from: 'DEATH_DT',
          type: 'date',
          format: 'DD-MM-YYYY',
          required: true,
          label: label('Date of death', 'تاريخ الوفاة'),
        },
        death_place_code: {
          from: 'DEATH_PLACE',
          codes: REGION_CODES,
          label: label('Place of death', 'مكان الوفاة'),
        },
        cause_of_death_code: {
          from: 'CAUSE_CODE',
          length: 8,
          label: label('Cause of death (ICD-10)', 'سبب الوفاة (ICD-10)'),
        },
      },
    },
  ];
}
