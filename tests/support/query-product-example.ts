import type { QueryDefinitionInput } from '../../warehouse/query/query-definition.ts';

/** The example of PRODUCT.md, word for word. */
export const productExample: QueryDefinitionInput = {
  name: 'widows-with-vehicles',
  entity: 'NAF',
  description: '...',
  tables: ['cspd_personal_info', 'dvld_vehicles'],
  join: 'inner',
  columns: ['cspd_personal_info.national_id', 'cspd_personal_info.first_name', 'dvld_vehicles.vehicle_type'],
  conditions: [
    { column: 'cspd_personal_info.marital_status', op: '=', value: 'W' },
    { column: 'cspd_personal_info.birth_date', op: '<=', param: 'born_before' },
  ],
  params: { born_before: { type: 'date', required: true } },
  limit: 100,
};
