import type { DciCollection } from './dci-mapping.ts';

export type Scalar = string | number | boolean;
export type RecordValues = Map<string, Scalar>;
type Json = Record<string, unknown>;

/** Attributes placed in the standard's structure; any other mapped attribute goes to additional_attributes. */
const PERSON_FIELDS = new Set([
  'UIN',
  'given_name',
  'second_name',
  'third_name',
  'surname',
  'sex',
  'gender',
  'birth_date',
  'birthdate',
  'age',
  'marital_status',
  'death_date',
  'deathdate',
  'DRN',
  'BRN',
  'mother_uin',
  'parent1_identifier',
  'father_uin',
  'parent2_identifier',
  'birth_place',
  'mother_name',
]);
const GROUP_FIELDS = new Set([
  'group_id',
  'group_identifier',
  'poverty_score',
  'group_size',
  'region',
  'location',
]);
const SEX: Record<string, string> = { M: 'male', F: 'female' };

/** Reads a row of the engine ("table.column" keys) as attribute → value, for the attributes the sender may read. */
export function readRecordValues(
  row: Record<string, unknown>,
  attributes: Map<string, string>,
): RecordValues {
  const values: RecordValues = new Map();
  for (const [name, column] of attributes) {
    const value = row[column];
    if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') {
      if (value !== '') values.set(name, value);
    }
  }
  return values;
}

function pick(values: RecordValues, ...names: string[]): Scalar | undefined {
  for (const n of names) if (values.has(n)) return values.get(n);
  return undefined;
}

function put(target: Json, key: string, value: unknown): void {
  if (value !== undefined) target[key] = value;
}

const toDateTime = (date: unknown) =>
  typeof date === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(date) ? `${date}T00:00:00Z` : date;

function buildName(values: RecordValues): Json | undefined {
  const name: Json = {};
  put(name, 'given_name', pick(values, 'given_name'));
  const middle = [pick(values, 'second_name'), pick(values, 'third_name')]
    .filter((v) => v !== undefined)
    .join(' ');
  if (middle !== '') name.second_name = middle;
  put(name, 'sur_name', pick(values, 'surname'));
  put(name, 'surname', pick(values, 'surname'));
  return Object.keys(name).length > 0 ? name : undefined;
}

function buildAdditional(
  values: RecordValues,
  placed: Set<string>,
): Array<{ name: string; value: unknown }> | undefined {
  const extra = [...values].filter(([n]) => !placed.has(n)).map(([name, value]) => ({ name, value }));
  return extra.length > 0 ? extra : undefined;
}

/** A CRVS person as dci_PersonRecord has it: identifier_type/identifier, name, sex, birthdate, deathdate, parents. */
export function buildPersonRecord(values: RecordValues): Json {
  const record: Json = { '@type': 'Person' };
  const uin = pick(values, 'UIN');
  if (uin !== undefined) {
    record.identifier_type = 'UIN';
    record.identifier = String(uin);
  }
  const identifiers = [
    ['UIN', uin],
    ['BRN', pick(values, 'BRN')],
    ['DRN', pick(values, 'DRN')],
  ].flatMap(([type, value]) =>
    value === undefined ? [] : [{ identifier_type: type, identifier_value: String(value) }],
  );
  if (identifiers.length > 0) record.identifiers = identifiers;
  put(record, 'name', buildName(values));
  const sex = pick(values, 'sex', 'gender');
  put(record, 'sex', sex === undefined ? undefined : (SEX[String(sex)] ?? 'unknown'));
  put(record, 'birthdate', pick(values, 'birth_date', 'birthdate', 'age'));
  put(record, 'deathdate', toDateTime(pick(values, 'death_date', 'deathdate')));
  put(record, 'marital_status', pick(values, 'marital_status'));
  const mother = pick(values, 'mother_uin', 'parent1_identifier');
  const father = pick(values, 'father_uin', 'parent2_identifier');
  if (mother !== undefined)
    record.parent1_identifier = { identifier_type: 'UIN', identifier: String(mother) };
  if (father !== undefined)
    record.parent2_identifier = { identifier_type: 'UIN', identifier: String(father) };
  put(
    record,
    'birthplace',
    pick(values, 'birth_place') === undefined
      ? undefined
      : { region_code: String(pick(values, 'birth_place')) },
  );
  put(record, 'additional_attributes', buildAdditional(values, PERSON_FIELDS));
  return record;
}

/** A social-registry member: member_identifier and demographic_info, then the household attributes it carries. */
export function buildMemberRecord(values: RecordValues): Json {
  const record: Json = { '@type': 'Member' };
  const uin = pick(values, 'UIN');
  const identifier =
    uin === undefined ? undefined : [{ identifier_type: 'UIN', identifier_value: String(uin) }];
  put(record, 'member_identifier', identifier);
  const person: Json = { '@type': 'SRPerson' };
  put(person, 'identifier', identifier);
  put(person, 'name', buildName(values));
  const sex = pick(values, 'sex', 'gender');
  put(person, 'sex', sex === undefined ? undefined : (SEX[String(sex)] ?? 'unknown'));
  put(person, 'birth_date', pick(values, 'birth_date', 'age'));
  record.demographic_info = person;
  put(record, 'marital_status', pick(values, 'marital_status'));
  put(record, 'relationship_head', pick(values, 'relationship_head'));
  const group = pick(values, 'group_id', 'group_identifier');
  if (group !== undefined)
    record.group_identifier = [{ identifier_type: 'HouseholdID', identifier_value: String(group) }];
  put(record, 'poverty_score', pick(values, 'poverty_score'));
  put(record, 'group_size', pick(values, 'group_size'));
  put(record, 'location', pick(values, 'region', 'location'));
  put(
    record,
    'additional_attributes',
    buildAdditional(values, new Set([...PERSON_FIELDS, ...GROUP_FIELDS, 'relationship_head'])),
  );
  return record;
}

/** A household: group_identifier, poverty score, size, place, its head and its members. */
export function buildGroupRecord(values: RecordValues, members: Json[] | undefined): Json {
  const record: Json = { '@type': 'Group' };
  const group = pick(values, 'group_id', 'group_identifier');
  if (group !== undefined)
    record.group_identifier = [{ identifier_type: 'HouseholdID', identifier_value: String(group) }];
  record.group_type = 'household';
  put(record, 'poverty_score', pick(values, 'poverty_score'));
  put(record, 'group_size', pick(values, 'group_size'));
  const region = pick(values, 'region', 'location');
  if (region !== undefined)
    record.place = { '@type': 'Place', address: String(region), region_code: String(region) };
  put(record, 'location', region);
  record.group_head_info = buildMemberRecord(values);
  put(record, 'member_list', members);
  return record;
}

export function buildRecord(collection: DciCollection, values: RecordValues, members?: Json[]): Json {
  if (collection.record === 'group') return buildGroupRecord(values, members);
  if (collection.record === 'member') return buildMemberRecord(values);
  return buildPersonRecord(values);
}
