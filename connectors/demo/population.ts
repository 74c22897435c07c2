import { ageOn, dayFromCivil } from './civil-dates.ts';
import { FAMILY_NAMES, FEMALE_FIRST_NAMES, MALE_FIRST_NAMES } from './names.ts';
import { REGION_WEIGHTS } from './regions.ts';
import { createRandom, pickWeighted, type Random } from './seeded-random.ts';

/** "Today" in Poveria: ages, current jobs and enrolments count from this day, never from the clock. */
export const REFERENCE_DAY = dayFromCivil(2026, 1, 1);
export const DAYS_PER_YEAR = 365.2425;
const FIRST_RECORDED_DEATH = dayFromCivil(2018, 1, 1);

export type Gender = 'M' | 'F';
export type MaritalStatus = 'S' | 'M' | 'W' | 'A' | 'D';
export type HouseholdRole = 'head' | 'spouse' | 'parent' | 'child';

export interface Person {
  nationalId: string;
  firstName: string;
  secondName: string;
  thirdName: string;
  familyName: string;
  motherName: string;
  gender: Gender;
  birthDay: number;
  /** Index into REGIONS. */
  birthPlace: number;
  maritalStatus: MaritalStatus;
  role: HouseholdRole;
  /** National IDs of the parents when they are persons of the demo. */
  motherId: string | null;
  fatherId: string | null;
  deathDay: number | null;
}

export interface Household {
  index: number;
  /** The civil registry's family book number. */
  number: string;
  /** Index into REGIONS. */
  region: number;
  members: Person[];
}

type Composition = 'single' | 'couple' | 'family' | 'single-parent' | 'extended';
const COMPOSITIONS: readonly Composition[] = ['single', 'couple', 'family', 'single-parent', 'extended'];

const HEAD_AGE_BANDS: readonly { min: number; max: number; weight: number }[] = [
  { min: 21, max: 29, weight: 15 },
  { min: 30, max: 39, weight: 28 },
  { min: 40, max: 49, weight: 24 },
  { min: 50, max: 59, weight: 16 },
  { min: 60, max: 69, weight: 10 },
  { min: 70, max: 88, weight: 7 },
];
const HEAD_AGE_WEIGHTS = HEAD_AGE_BANDS.map((b) => b.weight);
const CHILDREN_WANTED: readonly number[] = [1, 2, 2, 3, 3, 3, 4, 4, 4, 5, 5, 6, 7];

function compositionWeights(headAge: number): number[] {
  if (headAge < 30) return [25, 20, 55, 0, 0];
  if (headAge < 60) return [5, 5, 68, 12, 10];
  return [22, 33, 45, 0, 0];
}

interface PersonSpec {
  firstName: string;
  secondName: string;
  thirdName: string;
  familyName: string;
  motherName: string;
  gender: Gender;
  birthDay: number;
  maritalStatus: MaritalStatus;
  role: HouseholdRole;
  motherId?: string | null;
  fatherId?: string | null;
}

/**
 * Households one at a time, so a million persons never sit in memory together. The last
 * household is cut short so that exactly `persons` persons are generated.
 */
export function* generateHouseholds(options: {
  persons: number;
  seed: number;
  nationalIdOf: (index: number) => string;
}): Generator<Household> {
  const random = createRandom(options.seed, 'population');
  let nextPerson = 0;
  for (let index = 0; nextPerson < options.persons; index++) {
    const household = buildHousehold(random, index, () => options.nationalIdOf(nextPerson++));
    const room = options.persons - (nextPerson - household.members.length);
    if (household.members.length > room) truncateHousehold(household, room);
    yield household;
  }
}

function truncateHousehold(household: Household, size: number): void {
  household.members.length = size;
  const kept = new Set(household.members.map((m) => m.nationalId));
  for (const m of household.members) {
    if (m.motherId !== null && !kept.has(m.motherId)) m.motherId = null;
    if (m.fatherId !== null && !kept.has(m.fatherId)) m.fatherId = null;
  }
}

function buildHousehold(random: Random, index: number, takeId: () => string): Household {
  const region = pickWeighted(random, REGION_WEIGHTS);
  const members: Person[] = [];
  const add = (spec: PersonSpec): Person => {
    const person: Person = {
      nationalId: takeId(),
      ...spec,
      motherId: spec.motherId ?? null,
      fatherId: spec.fatherId ?? null,
      birthPlace: random.chance(0.8) ? region : pickWeighted(random, REGION_WEIGHTS),
      deathDay: null,
    };
    person.deathDay = drawDeath(random, person.birthDay);
    members.push(person);
    return person;
  };

  const band = HEAD_AGE_BANDS[pickWeighted(random, HEAD_AGE_WEIGHTS)]!;
  const age = random.int(band.min, band.max);
  const composition = COMPOSITIONS[pickWeighted(random, compositionWeights(age))]!;
  const headGender = drawHeadGender(random, composition);
  const head = add({
    ...randomNames(random, headGender),
    gender: headGender,
    birthDay: birthDayAtAge(random, age),
    maritalStatus: headMaritalStatus(random, composition, age),
    role: 'head',
  });

  let mother: Person | null = head.gender === 'F' ? head : null;
  const father: Person | null = head.gender === 'M' ? head : null;
  if (composition === 'couple' || composition === 'family' || composition === 'extended') {
    const spouseAge = Math.max(18, age - random.int(0, 8));
    mother = add({
      ...randomNames(random, 'F'),
      gender: 'F',
      birthDay: birthDayAtAge(random, spouseAge),
      maritalStatus: 'M',
      role: 'spouse',
    });
  }
  if (composition === 'extended') addHeadsParent(random, head, age, add);
  if (composition === 'family' || composition === 'extended' || composition === 'single-parent') {
    addChildren(random, mother, father, add);
  }
  return { index, number: String(10_000_001 + index), region, members };
}

function addHeadsParent(
  random: Random,
  head: Person,
  headAge: number,
  add: (spec: PersonSpec) => Person,
): void {
  const age = headAge + random.int(20, 35);
  if (age > 98) return;
  const birthDay = birthDayAtAge(random, age);
  const names = randomNames(random, 'M');
  if (random.chance(0.65)) {
    const parent = add({
      ...names,
      firstName: head.motherName,
      gender: 'F',
      birthDay,
      maritalStatus: 'W',
      role: 'parent',
    });
    head.motherId = parent.nationalId;
  } else {
    const parent = add({
      ...names,
      firstName: head.secondName,
      secondName: head.thirdName,
      familyName: head.familyName,
      gender: 'M',
      birthDay,
      maritalStatus: 'W',
      role: 'parent',
    });
    head.fatherId = parent.nationalId;
  }
}

function addChildren(
  random: Random,
  mother: Person | null,
  father: Person | null,
  add: (spec: PersonSpec) => Person,
): void {
  const parent = mother ?? father;
  if (parent === null) return;
  // Fathers who live alone with their children are the absent mother's age plus a few years.
  const firstAt = mother !== null ? random.int(19, 28) : random.int(23, 33);
  const lastAt = mother !== null ? 45 : 55;
  const fatherNames = father ?? randomNames(random, 'M');
  const motherName = mother?.firstName ?? random.pick(FEMALE_FIRST_NAMES);
  const wanted = random.pick(CHILDREN_WANTED);
  let day = parent.birthDay + Math.floor((firstAt + random.next()) * DAYS_PER_YEAR);
  for (let born = 0; born < wanted; born++) {
    if (day >= REFERENCE_DAY || day - parent.birthDay > lastAt * DAYS_PER_YEAR) return;
    const age = ageOn(day, REFERENCE_DAY);
    // Most grown-up children have left to found households of their own.
    if (age <= 24 || (age <= 35 && random.chance(0.3))) {
      const gender: Gender = random.chance(0.51) ? 'M' : 'F';
      add({
        firstName: random.pick(gender === 'M' ? MALE_FIRST_NAMES : FEMALE_FIRST_NAMES),
        secondName: fatherNames.firstName,
        thirdName: fatherNames.secondName,
        familyName: fatherNames.familyName,
        motherName,
        gender,
        birthDay: day,
        maritalStatus: age >= 20 && random.chance(0.04) ? 'D' : 'S',
        role: 'child',
        motherId: mother?.nationalId ?? null,
        fatherId: father?.nationalId ?? null,
      });
    }
    day += Math.floor((1.1 + random.next() * 3) * DAYS_PER_YEAR);
  }
}

function randomNames(
  random: Random,
  gender: Gender,
): Pick<PersonSpec, 'firstName' | 'secondName' | 'thirdName' | 'familyName' | 'motherName'> {
  return {
    firstName: random.pick(gender === 'M' ? MALE_FIRST_NAMES : FEMALE_FIRST_NAMES),
    secondName: random.pick(MALE_FIRST_NAMES),
    thirdName: random.pick(MALE_FIRST_NAMES),
    familyName: random.pick(FAMILY_NAMES),
    motherName: random.pick(FEMALE_FIRST_NAMES),
  };
}

function birthDayAtAge(random: Random, age: number): number {
  return REFERENCE_DAY - 1 - Math.floor((age + random.next()) * DAYS_PER_YEAR);
}

function drawHeadGender(random: Random, composition: Composition): Gender {
  if (composition === 'single-parent') return random.chance(0.85) ? 'F' : 'M';
  if (composition === 'single') return random.chance(0.4) ? 'F' : 'M';
  return 'M';
}

function headMaritalStatus(random: Random, composition: Composition, age: number): MaritalStatus {
  switch (composition) {
    case 'couple':
    case 'family':
    case 'extended':
      return 'M';
    case 'single-parent':
      return (['W', 'W', 'W', 'D', 'D', 'A'] as const)[random.int(0, 5)]!;
    case 'single':
      if (age < 35) return random.chance(0.9) ? 'S' : 'D';
      if (age < 60) return (['S', 'S', 'D', 'D', 'A'] as const)[random.int(0, 4)]!;
      return (['W', 'W', 'W', 'D', 'S'] as const)[random.int(0, 4)]!;
  }
}

function drawDeath(random: Random, birthDay: number): number | null {
  const age = ageOn(birthDay, REFERENCE_DAY);
  if (!random.chance(age >= 65 ? 0.04 : 0.003)) return null;
  const first = Math.max(birthDay + 1, FIRST_RECORDED_DEATH);
  if (first >= REFERENCE_DAY) return null;
  return random.int(first, REFERENCE_DAY - 1);
}
