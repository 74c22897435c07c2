import path from 'node:path';
import type { ConnectorDefinitionInput } from '../definition.ts';
import { label, type AgencyRegistry, type DemoContext } from './agency-registry.ts';
import { BadRowPlan, impossibleDate, withoutCheckDigit, withWrongCheckDigit } from './bad-rows.ts';
import { ageOn, formatSlashedDate } from './civil-dates.ts';
import { CsvSourceWriter, type CsvValue } from './csv-source-writer.ts';
import { EMPLOYERS } from './names.ts';
import { DAYS_PER_YEAR, REFERENCE_DAY, type Household, type Person } from './population.ts';
import { pickWeighted, type Random } from './seeded-random.ts';
import { createTally } from './tally.ts';

/** Social Security Corporation: a semicolon-separated export of every insured job. */
export const SSC_SOURCE_FILE = 'ssc_insured.csv';

const HEADER = [
  'SUBSCRIPTION_NO',
  'NAT_NO',
  'EMP_NO',
  'EMP_NAME',
  'START_DT',
  'END_DT',
  'MONTHLY_WAGE',
] as const;
type JobRow = Record<(typeof HEADER)[number], CsvValue>;

const FAULTS = [
  'wrong-check-digit',
  'impossible-start-date',
  'short-national-id',
  'missing-employer',
] as const;
const JOB_COUNT_WEIGHTS: readonly number[] = [0, 40, 30, 20, 10];
const RETIREMENT_AGE = 60;

interface Job {
  employer: (typeof EMPLOYERS)[number];
  start: number;
  end: number | null;
  wageFils: number;
}

function isInsured(random: Random, person: Person): boolean {
  const adultOn = person.birthDay + Math.ceil(18 * DAYS_PER_YEAR);
  if (adultOn >= (person.deathDay ?? REFERENCE_DAY)) return false;
  return random.chance(person.gender === 'M' ? 0.88 : 0.62);
}

/** A career as a run of jobs that never overlap, so (national ID, employer, start date) is unique. */
function drawCareer(random: Random, person: Person): Job[] {
  const start = person.birthDay + Math.floor(random.int(18, 26) * DAYS_PER_YEAR) + random.int(0, 364);
  const retirement = person.birthDay + Math.floor(RETIREMENT_AGE * DAYS_PER_YEAR);
  const end = Math.min(REFERENCE_DAY - 1, person.deathDay ?? Infinity, retirement);
  if (start >= end) return [];
  const ongoing = end === REFERENCE_DAY - 1;
  const count = pickWeighted(random, JOB_COUNT_WEIGHTS);
  const jobs: Job[] = [];
  let day = start;
  for (let j = 0; j < count && day < end; j++) {
    const last = j === count - 1;
    const length = last ? end - day : Math.max(60, Math.floor((end - day) * (0.15 + 0.45 * random.next())));
    const jobEnd = Math.min(day + length, end);
    const experience = ageOn(person.birthDay, day) - 18;
    jobs.push({
      employer: random.pick(EMPLOYERS),
      start: day,
      end: last && ongoing && random.chance(0.85) ? null : jobEnd,
      wageFils: Math.round((260 + experience * 18 + random.next() ** 2 * 1800) * 1000) + random.int(0, 999),
    });
    day = jobEnd + random.int(1, 180);
  }
  return jobs;
}

/** Jordanian-style money: dinars with three decimals (fils). */
function formatWage(fils: number): string {
  return `${Math.floor(fils / 1000)}.${String(fils % 1000).padStart(3, '0')}`;
}

export function openSscRegistry(ctx: DemoContext): AgencyRegistry {
  const random = ctx.random('ssc');
  const plan = new BadRowPlan(ctx.random('bad-rows:ssc-insured'), FAULTS);
  const tally = createTally('ssc-insured', 'ssc_insured');
  const writer = new CsvSourceWriter(path.join(ctx.sourcesDir, SSC_SOURCE_FILE), {
    delimiter: ';',
    encoding: 'utf-8',
    lineEnding: '\n',
    header: HEADER,
  });
  let subscription = 0;
  let lastPerson: Person | null = null;

  const jobRow = (person: Person, job: Job): JobRow => ({
    SUBSCRIPTION_NO: String(4_000_001 + subscription++),
    NAT_NO: person.nationalId,
    EMP_NO: job.employer.number,
    EMP_NAME: job.employer.name,
    START_DT: formatSlashedDate(job.start),
    END_DT: job.end === null ? null : formatSlashedDate(job.end),
    MONTHLY_WAGE: formatWage(job.wageFils),
  });
  const write = (row: JobRow) => writer.writeRow(HEADER.map((c) => row[c]));
  const writeBad = (person: Person) => {
    const start = REFERENCE_DAY - random.int(30, 3000);
    const row = jobRow(person, {
      employer: random.pick(EMPLOYERS),
      start,
      end: null,
      wageFils: random.int(260_000, 900_000),
    });
    const fault = plan.nextKind();
    if (fault === 'wrong-check-digit') row.NAT_NO = withWrongCheckDigit(random, person.nationalId);
    else if (fault === 'short-national-id') row.NAT_NO = withoutCheckDigit(person.nationalId);
    else {
      row.NAT_NO = ctx.nextGhostId();
      if (fault === 'impossible-start-date') row.START_DT = impossibleDate(random, 'DD/MM/YYYY');
      if (fault === 'missing-employer') row.EMP_NAME = null;
    }
    write(row);
  };

  return {
    addHousehold(household: Household) {
      for (const person of household.members) {
        lastPerson = person;
        if (!isInsured(random, person)) continue;
        for (const job of drawCareer(random, person)) {
          write(jobRow(person, job));
          tally.sourceRows++;
          if (plan.shouldFollowGoodRow()) writeBad(person);
        }
      }
    },
    flush: () => writer.flush(),
    async finish() {
      if (lastPerson !== null) while (plan.shortfall > 0) writeBad(lastPerson);
      await writer.close();
      tally.badRows = plan.count;
      tally.sourceRows += tally.badRows;
      return [tally];
    },
    abort: () => writer.abort(),
  };
}

export function buildSscConnectors(): ConnectorDefinitionInput[] {
  const date = (from: string, en: string, ar: string, required: boolean) =>
    ({ from, type: 'date', format: 'DD/MM/YYYY', required, label: label(en, ar) }) as const;
  return [
    {
      name: 'ssc-insured',
      entity: 'SSC',
      entity_label: label('Social Security Corporation', 'المؤسسة العامة للضمان الاجتماعي'),
      description:
        'Insured jobs from the nightly CSV export of the social security register: one row per person, employer ' +
        'and start date; an empty end date is a current job.',
      source: {
        kind: 'csv',
        path: `../sources/${SSC_SOURCE_FILE}`,
        delimiter: ';',
        encoding: 'utf-8',
        header: true,
      },
      target: {
        table: 'ssc_insured',
        label: label('Insured persons and their jobs', 'المؤمن عليهم ووظائفهم'),
        key: ['national_id', 'employer_name', 'start_date'],
      },
      mode: 'full',
      schedule: '0 2 * * *',
      columns: {
        national_id: {
          from: 'NAT_NO',
          required: true,
          length: 10,
          label: label('National ID', 'الرقم الوطني'),
        },
        employer_name: { from: 'EMP_NAME', required: true, label: label('Employer', 'اسم المنشأة') },
        employer_number: { from: 'EMP_NO', length: 16, label: label('Employer number', 'رقم المنشأة') },
        monthly_salary: {
          from: 'MONTHLY_WAGE',
          type: 'number',
          label: label('Monthly salary (PVD)', 'الراتب الشهري'),
        },
        start_date: date('START_DT', 'Start date', 'تاريخ الالتحاق', true),
        end_date: date('END_DT', 'End date', 'تاريخ الانفكاك', false),
      },
    },
  ];
}
