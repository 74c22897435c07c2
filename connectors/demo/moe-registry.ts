import path from 'node:path';
import type { ConnectorDefinitionInput } from '../definition.ts';
import { drawUpdatedAt, label, type AgencyRegistry, type DemoContext } from './agency-registry.ts';
import { BadRowPlan, withoutCheckDigit, withWrongCheckDigit } from './bad-rows.ts';
import { ageOn, dayFromCivil } from './civil-dates.ts';
import type { Household, Person } from './population.ts';
import { regionAt } from './regions.ts';
import { SqliteSourceWriter, type SqlValue } from './sqlite-source-writer.ts';
import { createTally } from './tally.ts';

/** Ministry of Education: the students of the current school year in one SQLite database. */
export const MOE_SOURCE_FILE = 'moe.sqlite';
const ACADEMIC_YEAR = '2025/2026';
/** Pupils' ages count on the first day of the school year. */
const SCHOOL_YEAR_START = dayFromCivil(2025, 9, 1);
const KINDERGARTEN_AGE = 5;
const LAST_GRADE = 12;

const SCHEMA = `
CREATE TABLE students (
  STUDENT_NATNO TEXT NOT NULL, STUDENT_NAME TEXT, SCHOOL_NO INTEGER, GRADE_CODE TEXT,
  ENROLLED TEXT NOT NULL, ATTEND_PCT REAL, ACADEMIC_YEAR TEXT NOT NULL, UPDATED_AT TEXT NOT NULL
);`;
// prettier-ignore
const COLUMNS = [
  'STUDENT_NATNO', 'STUDENT_NAME', 'SCHOOL_NO', 'GRADE_CODE', 'ENROLLED', 'ATTEND_PCT', 'ACADEMIC_YEAR', 'UPDATED_AT',
] as const;
type StudentRow = Record<(typeof COLUMNS)[number], SqlValue>;

const FAULTS = ['wrong-check-digit', 'unknown-grade', 'short-national-id', 'missing-school'] as const;

/** KG2 is the year before grade 1; the warehouse counts it as grade 0. */
function gradeCode(grade: number): string {
  return grade === 0 ? 'KG2' : `G${String(grade).padStart(2, '0')}`;
}

export function openMoeRegistry(ctx: DemoContext): AgencyRegistry {
  const random = ctx.random('moe');
  const plan = new BadRowPlan(ctx.random('bad-rows:moe-students'), FAULTS);
  const tally = createTally('moe-students', 'moe_students');
  const writer = new SqliteSourceWriter(path.join(ctx.sourcesDir, MOE_SOURCE_FILE), SCHEMA);
  const insert = writer.prepareInsert('students', COLUMNS);
  let lastPerson: { person: Person; household: Household } | null = null;

  const studentRow = (person: Person, household: Household, grade: number): StudentRow => {
    const enrolled = random.chance(0.96);
    return {
      STUDENT_NATNO: person.nationalId,
      STUDENT_NAME: `${person.firstName} ${person.secondName} ${person.familyName}`,
      SCHOOL_NO: Number(regionAt(household.region).cspdCode) * 10_000 + random.int(1, 400),
      GRADE_CODE: gradeCode(grade),
      ENROLLED: enrolled ? 'Y' : 'N',
      ATTEND_PCT: enrolled ? Math.round((100 - random.next() ** 2 * 40) * 10) / 10 : null,
      ACADEMIC_YEAR,
      UPDATED_AT: drawUpdatedAt(random),
    };
  };
  const write = (row: StudentRow) => insert(COLUMNS.map((c) => row[c]));
  const writeBad = (person: Person, household: Household) => {
    const row = studentRow(person, household, random.int(1, LAST_GRADE));
    const fault = plan.nextKind();
    if (fault === 'wrong-check-digit') row.STUDENT_NATNO = withWrongCheckDigit(random, person.nationalId);
    else if (fault === 'short-national-id') row.STUDENT_NATNO = withoutCheckDigit(person.nationalId);
    else {
      row.STUDENT_NATNO = ctx.nextGhostId();
      if (fault === 'unknown-grade') row.GRADE_CODE = 'G13';
      if (fault === 'missing-school') row.SCHOOL_NO = null;
    }
    write(row);
  };

  return {
    addHousehold(household) {
      for (const person of household.members) {
        lastPerson = { person, household };
        if (person.deathDay !== null) continue;
        const age = ageOn(person.birthDay, SCHOOL_YEAR_START);
        if (age < KINDERGARTEN_AGE || age > KINDERGARTEN_AGE + LAST_GRADE) continue;
        // Some pupils started late or repeated a year.
        const grade = Math.max(0, age - KINDERGARTEN_AGE - (random.chance(0.08) ? 1 : 0));
        write(studentRow(person, household, grade));
        tally.sourceRows++;
        if (plan.shouldFollowGoodRow()) writeBad(person, household);
      }
    },
    flush: () => Promise.resolve(),
    finish() {
      if (lastPerson !== null) while (plan.shortfall > 0) writeBad(lastPerson.person, lastPerson.household);
      writer.close();
      tally.badRows = plan.count;
      tally.sourceRows += tally.badRows;
      return Promise.resolve([tally]);
    },
    abort: () => writer.abort(),
  };
}

export function buildMoeConnectors(): ConnectorDefinitionInput[] {
  const grades: Record<string, number> = {};
  for (let grade = 0; grade <= LAST_GRADE; grade++) grades[gradeCode(grade)] = grade;
  return [
    {
      name: 'moe-students',
      entity: 'MOE',
      entity_label: label('Ministry of Education', 'وزارة التربية والتعليم'),
      description: `Students of the school year ${ACADEMIC_YEAR} with their school, grade (0 = KG2), enrolment and attendance. Weekly full load.`,
      source: {
        kind: 'sql',
        client: 'better-sqlite3',
        connection: { filename: `../sources/${MOE_SOURCE_FILE}` },
        table: 'students',
      },
      target: { table: 'moe_students', label: label('Students', 'الطلبة'), key: ['national_id'] },
      mode: 'full',
      schedule: '0 3 * * 6',
      columns: {
        national_id: {
          from: 'STUDENT_NATNO',
          required: true,
          length: 10,
          label: label("Student's national ID", 'الرقم الوطني للطالب'),
        },
        school_code: {
          from: 'SCHOOL_NO',
          required: true,
          length: 16,
          label: label('School code', 'رمز المدرسة'),
        },
        grade: {
          from: 'GRADE_CODE',
          type: 'integer',
          required: true,
          codes: grades,
          label: label('Grade', 'الصف'),
        },
        enrolled: {
          from: 'ENROLLED',
          type: 'boolean',
          true_values: ['Y'],
          label: label('Enrolled', 'ملتحق'),
        },
        attendance_rate: {
          from: 'ATTEND_PCT',
          type: 'number',
          label: label('Attendance rate (%)', 'نسبة الحضور (%)'),
        },
        academic_year: { from: 'ACADEMIC_YEAR', length: 9, label: label('Academic year', 'العام الدراسي') },
      },
    },
  ];
}
