import { grantAccess } from '../../privileges/grants.ts';
import type { AppContext } from '../context.ts';
import { createClient, type ClientCredentials } from './client-service.ts';
import { saveQuery } from './query-service.ts';
import { createUser, type NewUser } from './user-service.ts';

const DEMO_ACTOR = { name: 'demo', role: 'super-admin' as const, entity: null };
const GRANT_TERMS = {
  purpose: 'Means test for cash assistance: identity, household, income and assets',
  legalBasis: 'National Aid Fund Law (Poveria), art. 4: eligibility verification',
};

/** NAF, the aid fund, reads what a means test needs: minimum viable data, not whole registries. */
const DEMO_GRANTS: Array<{ table: string; columns: string[] }> = [
  {
    table: 'cspd_personal_info',
    columns: [
      'national_id',
      'first_name',
      'family_name',
      'gender',
      'birth_date',
      'marital_status',
      'household_id',
    ],
  },
  { table: 'cspd_deaths', columns: ['national_id', 'death_date'] },
  // Child grants ask whether a mother has a child under two (a DCI CRVS search).
  { table: 'cspd_births', columns: ['national_id', 'mother_national_id', 'birth_date'] },
  { table: 'ssc_insured', columns: ['national_id', 'monthly_salary', 'start_date', 'end_date'] },
  { table: 'dvld_vehicles', columns: [] },
];

const DEMO_QUERY = {
  name: 'widows-with-vehicles',
  entity: 'NAF',
  description: 'Widows born before a date who own a vehicle',
  tables: ['cspd_personal_info', 'dvld_vehicles'],
  join: 'inner',
  columns: [
    'cspd_personal_info.national_id',
    'cspd_personal_info.first_name',
    'cspd_personal_info.family_name',
    'dvld_vehicles.vehicle_type',
  ],
  conditions: [
    { column: 'cspd_personal_info.marital_status', op: '=', value: 'W' },
    { column: 'cspd_personal_info.birth_date', op: '<=', param: 'born_before' },
  ],
  params: { born_before: { type: 'date', required: true } },
  limit: 100,
};

export interface DemoAccess {
  client: ClientCredentials;
  users: Array<NewUser & { role: string; entity: string }>;
}

/** Grants, an API client, a saved query and portal users, so the demo answers its first API call. */
export async function seedDemoAccess(ctx: AppContext): Promise<DemoAccess> {
  for (const grant of DEMO_GRANTS)
    await grantAccess(ctx, { ...GRANT_TERMS, consumer: 'NAF', ...grant, actor: DEMO_ACTOR });
  await saveQuery(ctx, DEMO_QUERY, DEMO_ACTOR.name);
  const client = await createClient(ctx, { entity: 'NAF', name: 'NAF MIS (demo)' }, DEMO_ACTOR.name);
  const users: DemoAccess['users'] = [];
  for (const [username, entity, role] of [
    ['admin', 'NAF', 'super-admin'],
    ['cspd.custodian', 'CSPD', 'custodian'],
    ['naf.admin', 'NAF', 'entity-admin'],
  ] as const) {
    users.push({ ...(await createUser(ctx, { username, entity, role }, DEMO_ACTOR.name)), role, entity });
  }
  return { client, users };
}

export function formatDemoAccess(access: DemoAccess, url: string): string[] {
  return [
    'Demo API client (NAF) — the secret is shown only now:',
    `  client_id: ${access.client.client_id}   client_secret: ${access.client.client_secret}`,
    `  curl -s -X POST ${url}/api/v1/token -H 'content-type: application/json' -d '{"grant_type":"client_credentials","client_id":"${access.client.client_id}","client_secret":"${access.client.client_secret}"}'`,
    'Demo portal users (password and TOTP URI shown only now):',
    ...access.users.map(
      (u) => `  ${u.username} (${u.role}, ${u.entity})  password: ${u.password}  totp: ${u.otpauth_uri}`,
    ),
  ];
}
