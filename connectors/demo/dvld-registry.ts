import path from 'node:path';
import type { ConnectorDefinitionInput } from '../definition.ts';
import { label, type AgencyRegistry, type DemoContext } from './agency-registry.ts';
import { BadRowPlan, impossibleDate, withoutCheckDigit, withWrongCheckDigit } from './bad-rows.ts';
import { formatSlashedDate } from './civil-dates.ts';
import { CsvSourceWriter, type CsvValue } from './csv-source-writer.ts';
import { DAYS_PER_YEAR, REFERENCE_DAY, type Household, type Person } from './population.ts';
import { regionAt } from './regions.ts';
import { pickWeighted, type Random } from './seeded-random.ts';
import { createTally } from './tally.ts';

/** Driver and Vehicle Licensing Department: a Windows export in the Arabic code page, CRLF lines. */
export const DVLD_SOURCE_FILE = 'dvld_vehicles.csv';
const ENCODING = 'windows-1256';

const HEADER = [
  'REG_NO',
  'OWNER_NATNO',
  'VEH_TYPE',
  'VEH_CLASS',
  'MAKE',
  'MODEL_YEAR',
  'COLOR',
  'LICENSE_EXP',
] as const;
type VehicleRow = Record<(typeof HEADER)[number], CsvValue>;

interface VehicleType {
  ar: string;
  code: string;
  weight: number;
  classes: readonly string[];
}

const VEHICLE_TYPES: readonly VehicleType[] = [
  { ar: 'سيارة ركوب', code: 'passenger_car', weight: 70, classes: ['خصوصي', 'خصوصي', 'خصوصي', 'عمومي'] },
  { ar: 'بكب', code: 'pickup', weight: 12, classes: ['خصوصي', 'تجاري'] },
  { ar: 'دراجة نارية', code: 'motorcycle', weight: 6, classes: ['خصوصي'] },
  { ar: 'حافلة صغيرة', code: 'minibus', weight: 4, classes: ['عمومي', 'خصوصي'] },
  { ar: 'شاحنة', code: 'truck', weight: 4, classes: ['تجاري'] },
  { ar: 'جرار زراعي', code: 'tractor', weight: 3, classes: ['زراعي'] },
  { ar: 'حافلة', code: 'bus', weight: 1, classes: ['عمومي'] },
];
const VEHICLE_TYPE_WEIGHTS = VEHICLE_TYPES.map((t) => t.weight);
const VEHICLE_CLASSES: Record<string, string> = {
  خصوصي: 'private',
  عمومي: 'public',
  تجاري: 'commercial',
  زراعي: 'agricultural',
};
const MAKES: readonly string[] = [
  'Toyota',
  'Hyundai',
  'Kia',
  'Nissan',
  'Mitsubishi',
  'Mercedes-Benz',
  'Volkswagen',
  'Ford',
  'Isuzu',
  'Honda',
];
const COLORS: readonly string[] = ['أبيض', 'أسود', 'فضي', 'رمادي', 'أحمر', 'أزرق', 'أخضر', 'بيج'];
const FAULTS = [
  'wrong-check-digit',
  'unknown-vehicle-type',
  'short-national-id',
  'impossible-expiry-date',
] as const;

/** More new cars than old ones: r^1.5, with sqrt rather than a fractional power so every platform rounds alike. */
function skewedToNewer(random: Random): number {
  const r = random.next();
  return r * Math.sqrt(r);
}

function vehicleCount(random: Random, person: Person): number {
  const adultOn = person.birthDay + Math.ceil(18 * DAYS_PER_YEAR);
  if (adultOn >= REFERENCE_DAY || !random.chance(person.gender === 'M' ? 0.6 : 0.22)) return 0;
  return random.chance(0.85) ? 1 : random.chance(0.8) ? 2 : 3;
}

export function openDvldRegistry(ctx: DemoContext): AgencyRegistry {
  const random = ctx.random('dvld');
  const plan = new BadRowPlan(ctx.random('bad-rows:dvld-vehicles'), FAULTS);
  const tally = createTally('dvld-vehicles', 'dvld_vehicles');
  const writer = new CsvSourceWriter(path.join(ctx.sourcesDir, DVLD_SOURCE_FILE), {
    delimiter: ',',
    encoding: ENCODING,
    lineEnding: '\r\n',
    header: HEADER,
  });
  let registration = 0;
  let lastPerson: { person: Person; household: Household } | null = null;

  const vehicleRow = (person: Person, household: Household): VehicleRow => {
    const type = VEHICLE_TYPES[pickWeighted(random, VEHICLE_TYPE_WEIGHTS)]!;
    return {
      // Plates carry the governorate's number; the running number keeps them unique.
      REG_NO: `${regionAt(household.region).cspdCode}-${String(++registration).padStart(7, '0')}`,
      OWNER_NATNO: person.nationalId,
      VEH_TYPE: type.ar,
      VEH_CLASS: random.pick(type.classes),
      MAKE: random.pick(MAKES),
      MODEL_YEAR: 2026 - Math.floor(skewedToNewer(random) * 32),
      COLOR: random.pick(COLORS),
      LICENSE_EXP: formatSlashedDate(REFERENCE_DAY + random.int(-400, 365)),
    };
  };
  const write = (row: VehicleRow) => writer.writeRow(HEADER.map((c) => row[c]));
  const writeBad = (person: Person, household: Household) => {
    const row = vehicleRow(person, household);
    const fault = plan.nextKind();
    if (fault === 'wrong-check-digit') row.OWNER_NATNO = withWrongCheckDigit(random, person.nationalId);
    else if (fault === 'short-national-id') row.OWNER_NATNO = withoutCheckDigit(person.nationalId);
    else {
      row.OWNER_NATNO = ctx.nextGhostId();
      if (fault === 'unknown-vehicle-type') row.VEH_TYPE = 'مركبة مجهولة';
      if (fault === 'impossible-expiry-date') row.LICENSE_EXP = impossibleDate(random, 'DD/MM/YYYY');
    }
    write(row);
  };

  return {
    addHousehold(household) {
      for (const person of household.members) {
        lastPerson = { person, household };
        const count = vehicleCount(random, person);
        for (let v = 0; v < count; v++) {
          write(vehicleRow(person, household));
          tally.sourceRows++;
          if (plan.shouldFollowGoodRow()) writeBad(person, household);
        }
      }
    },
    flush: () => writer.flush(),
    async finish() {
      if (lastPerson !== null) while (plan.shortfall > 0) writeBad(lastPerson.person, lastPerson.household);
      await writer.close();
      tally.badRows = plan.count;
      tally.sourceRows += tally.badRows;
      return [tally];
    },
    abort: () => writer.abort(),
  };
}

export function buildDvldConnectors(): ConnectorDefinitionInput[] {
  return [
    {
      name: 'dvld-vehicles',
      entity: 'DVLD',
      entity_label: label('Driver and Vehicle Licensing Department', 'إدارة ترخيص السواقين والمركبات'),
      description:
        'Registered vehicles and their owners, from the nightly CSV export of the licensing system ' +
        '(Windows Arabic code page, vehicle types and classes in Arabic).',
      source: {
        kind: 'csv',
        path: `../sources/${DVLD_SOURCE_FILE}`,
        delimiter: ',',
        encoding: ENCODING,
        header: true,
      },
      target: { table: 'dvld_vehicles', label: label('Vehicles', 'المركبات'), key: ['registration_number'] },
      mode: 'full',
      schedule: '30 2 * * *',
      columns: {
        national_id: {
          from: 'OWNER_NATNO',
          required: true,
          length: 10,
          label: label("Owner's national ID", 'الرقم الوطني للمالك'),
        },
        registration_number: {
          from: 'REG_NO',
          required: true,
          length: 16,
          label: label('Registration number', 'رقم التسجيل'),
        },
        vehicle_type: {
          from: 'VEH_TYPE',
          required: true,
          codes: Object.fromEntries(VEHICLE_TYPES.map((t) => [t.ar, t.code])),
          label: label('Vehicle type', 'نوع المركبة'),
        },
        vehicle_class: {
          from: 'VEH_CLASS',
          codes: VEHICLE_CLASSES,
          label: label('Registration class', 'فئة التسجيل'),
        },
        make: { from: 'MAKE', length: 32, label: label('Make', 'الصنع') },
        model_year: { from: 'MODEL_YEAR', type: 'integer', label: label('Model year', 'سنة الصنع') },
        license_expiry_date: {
          from: 'LICENSE_EXP',
          type: 'date',
          format: 'DD/MM/YYYY',
          label: label('Licence expiry date', 'تاريخ انتهاء الترخيص'),
        },
      },
    },
  ];
}
