import path from 'node:path';
import type { ConnectorDefinitionInput } from '../definition.ts';
import { label, type AgencyRegistry, type DemoContext } from './agency-registry.ts';
import { BadRowPlan, withoutCheckDigit, withWrongCheckDigit } from './bad-rows.ts';
import { ageOn } from './civil-dates.ts';
import { CsvSourceWriter, type CsvValue } from './csv-source-writer.ts';
import { REFERENCE_DAY, type Household, type Person } from './population.ts';
import { REGIONS, regionAt } from './regions.ts';
import type { Random } from './seeded-random.ts';
import { createTally } from './tally.ts';

/** National Aid Fund: the members of every household receiving aid, exported by its MIS. */
export const NAF_SOURCE_FILE = 'naf_households.csv';

const HEADER = [
  'FILE_NO',
  'MEMBER_NATNO',
  'MEMBER_NAME',
  'RELATION',
  'FAMILY_SIZE',
  'REGION',
  'POVERTY_SCORE',
] as const;
type MemberRow = Record<(typeof HEADER)[number], CsvValue>;

const RELATIONS: Record<string, string> = {
  '1': 'head',
  '2': 'spouse',
  '3': 'son',
  '4': 'daughter',
  '5': 'father',
  '6': 'mother',
};
const FAULTS = ['wrong-check-digit', 'unknown-relationship', 'short-national-id', 'unknown-region'] as const;

function relationCode(person: Person): string {
  switch (person.role) {
    case 'head':
      return '1';
    case 'spouse':
      return '2';
    case 'child':
      return person.gender === 'M' ? '3' : '4';
    case 'parent':
      return person.gender === 'M' ? '5' : '6';
  }
}

/** Large households, single parents and the elderly apply for aid more often. */
function receivesAid(random: Random, household: Household): boolean {
  const head = household.members[0]!;
  let chance = 0.23;
  if (household.members.length >= 6) chance += 0.15;
  if (head.role === 'head' && head.maritalStatus !== 'M' && household.members.length > 1) chance += 0.25;
  if (ageOn(head.birthDay, REFERENCE_DAY) >= 65) chance += 0.2;
  return random.chance(chance);
}

export function openNafRegistry(ctx: DemoContext): AgencyRegistry {
  const random = ctx.random('naf');
  const plan = new BadRowPlan(ctx.random('bad-rows:naf-households'), FAULTS);
  const tally = createTally('naf-households', 'naf_households');
  const writer = new CsvSourceWriter(path.join(ctx.sourcesDir, NAF_SOURCE_FILE), {
    delimiter: ',',
    encoding: 'utf-8',
    lineEnding: '\n',
    header: HEADER,
  });
  let files = 0;
  let lastHousehold: Household | null = null;
  let lastMember: { person: Person; household: Household; file: string } | null = null;

  const memberRow = (person: Person, household: Household, file: string, score: string): MemberRow => ({
    FILE_NO: file,
    MEMBER_NATNO: person.nationalId,
    MEMBER_NAME: `${person.firstName} ${person.secondName} ${person.thirdName} ${person.familyName}`,
    RELATION: relationCode(person),
    FAMILY_SIZE: household.members.length,
    REGION: regionAt(household.region).ar,
    POVERTY_SCORE: score,
  });
  const write = (row: MemberRow) => writer.writeRow(HEADER.map((c) => row[c]));
  const writeBad = (person: Person, household: Household, file: string) => {
    const row = memberRow(person, household, file, drawPovertyScore(random, household));
    const fault = plan.nextKind();
    if (fault === 'wrong-check-digit') row.MEMBER_NATNO = withWrongCheckDigit(random, person.nationalId);
    else if (fault === 'short-national-id') row.MEMBER_NATNO = withoutCheckDigit(person.nationalId);
    else {
      row.MEMBER_NATNO = ctx.nextGhostId();
      if (fault === 'unknown-relationship') row.RELATION = '9';
      if (fault === 'unknown-region') row.REGION = 'غير محدد';
    }
    write(row);
  };

  return {
    addHousehold(household) {
      lastHousehold = household;
      if (!receivesAid(random, household)) return;
      const file = `NAF-${String(++files).padStart(7, '0')}`;
      const score = drawPovertyScore(random, household);
      for (const person of household.members) {
        write(memberRow(person, household, file, score));
        tally.sourceRows++;
        if (plan.shouldFollowGoodRow()) writeBad(person, household, file);
        lastMember = { person, household, file };
      }
    },
    flush: () => writer.flush(),
    async finish() {
      // Even a demo too small to have an aid household gets its bad rows, in a file of their own.
      const template =
        lastMember ??
        (lastHousehold === null
          ? null
          : {
              person: lastHousehold.members[0]!,
              household: lastHousehold,
              file: `NAF-${String(files + 1).padStart(7, '0')}`,
            });
      if (template !== null)
        while (plan.shortfall > 0) writeBad(template.person, template.household, template.file);
      await writer.close();
      tally.badRows = plan.count;
      tally.sourceRows += tally.badRows;
      return [tally];
    },
    abort: () => writer.abort(),
  };
}

/** Proxy-means score from 0 (least poor) to 10 (poorest), one decimal as the fund's MIS prints it. */
function drawPovertyScore(random: Random, household: Household): string {
  const score = Math.min(10, 2.5 + household.members.length * 0.5 + random.next() * 3.5);
  return score.toFixed(1);
}

export function buildNafConnectors(): ConnectorDefinitionInput[] {
  return [
    {
      name: 'naf-households',
      entity: 'NAF',
      entity_label: label('National Aid Fund', 'صندوق المعونة الوطنية'),
      description:
        'Members of the households receiving aid, with their relationship to the head, household size, region and poverty score.',
      source: {
        kind: 'csv',
        path: `../sources/${NAF_SOURCE_FILE}`,
        delimiter: ',',
        encoding: 'utf-8',
        header: true,
      },
      target: {
        table: 'naf_households',
        label: label('Aid households', 'الأسر المنتفعة'),
        key: ['national_id'],
      },
      mode: 'full',
      schedule: '0 4 * * *',
      columns: {
        national_id: {
          from: 'MEMBER_NATNO',
          required: true,
          length: 10,
          label: label("Member's national ID", 'الرقم الوطني للفرد'),
        },
        household_id: {
          from: 'FILE_NO',
          required: true,
          length: 16,
          label: label('Aid file number', 'رقم ملف الأسرة'),
        },
        relationship_to_head: {
          from: 'RELATION',
          required: true,
          codes: RELATIONS,
          label: label('Relationship to the head', 'صلة القرابة برب الأسرة'),
        },
        household_size: {
          from: 'FAMILY_SIZE',
          type: 'integer',
          label: label('Household size', 'عدد أفراد الأسرة'),
        },
        region: {
          from: 'REGION',
          codes: Object.fromEntries(REGIONS.map((r) => [r.ar, r.en])),
          label: label('Region', 'المحافظة'),
        },
        poverty_score: { from: 'POVERTY_SCORE', type: 'number', label: label('Poverty score', 'مؤشر الفقر') },
      },
    },
  ];
}
