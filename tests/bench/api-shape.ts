/**
 * What the API benchmark grants NAF and what its saved query reads, written out once so that
 * the bare server (which has no catalog and no grants) reads exactly the same columns.
 */

/** Granted to NAF column by column. */
export const CSPD_GRANTED_COLUMNS = [
  'national_id',
  'first_name',
  'family_name',
  'gender',
  'birth_date',
  'marital_status',
] as const;

/** Granted to NAF as a whole table: the hub then selects every catalog column, in catalog order. */
export const DVLD_COLUMNS = [
  'national_id',
  'registration_number',
  'vehicle_type',
  'vehicle_class',
  'make',
  'model_year',
  'license_expiry_date',
] as const;

/** NAF's own table: it reads every column without a grant. */
export const NAF_COLUMNS = [
  'national_id',
  'household_id',
  'relationship_to_head',
  'household_size',
  'region',
  'poverty_score',
] as const;

/**
 * The tables the hub's person lookup returns to NAF, in catalog (name) order, with the order it
 * sorts a person's rows in: the record key where readable, then every returned column.
 */
export const PERSON_TABLES: ReadonlyArray<{
  table: string;
  columns: readonly string[];
  order: readonly string[];
}> = [
  { table: 'cspd_personal_info', columns: CSPD_GRANTED_COLUMNS, order: CSPD_GRANTED_COLUMNS },
  {
    table: 'dvld_vehicles',
    columns: DVLD_COLUMNS,
    order: ['registration_number', ...DVLD_COLUMNS.filter((c) => c !== 'registration_number')],
  },
  { table: 'naf_households', columns: NAF_COLUMNS, order: NAF_COLUMNS },
];

/** How many national IDs each batch call of the benchmark asks for. */
export const BATCH_SIZE = 10;

export const QUERY_NAME = 'widows-with-vehicles';
export const PAGE_SIZE = 20;
export const QUERY_LIMIT = 100;

export const QUERY_COLUMNS = [
  'cspd_personal_info.national_id',
  'cspd_personal_info.first_name',
  'cspd_personal_info.family_name',
  'cspd_personal_info.birth_date',
  'dvld_vehicles.vehicle_type',
  'dvld_vehicles.model_year',
] as const;

export const QUERY_DEFINITION = {
  name: QUERY_NAME,
  entity: 'NAF',
  description: 'Widows born before a date who own a vehicle (API benchmark)',
  tables: ['cspd_personal_info', 'dvld_vehicles'],
  join: 'inner',
  columns: [...QUERY_COLUMNS],
  conditions: [
    { column: 'cspd_personal_info.marital_status', op: '=', value: 'W' },
    { column: 'cspd_personal_info.birth_date', op: '<=', param: 'born_before' },
  ],
  params: { born_before: { type: 'date', required: true } },
  limit: QUERY_LIMIT,
};

/** Rotated through by the saved-query runs, so that not every request reads the same rows. */
export const BORN_BEFORE_DATES = ['1950-12-31', '1960-12-31', '1970-12-31', '1980-12-31'] as const;
