import type { Knex } from 'knex';
import { grantAccess } from '../../privileges/grants.ts';
import type { Actor } from '../../privileges/actor.ts';
import { readConfig } from '../../server/config.ts';
import { closeContext, openContext, type AppContext } from '../../server/context.ts';
import { createClient, type ClientCredentials } from '../../server/services/client-service.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';
import { createDemo } from '../../server/services/demo-service.ts';
import { saveQuery } from '../../server/services/query-service.ts';
import { CSPD_GRANTED_COLUMNS, QUERY_DEFINITION } from './api-shape.ts';

export interface ApiFixture {
  databaseFile: string;
  client: ClientCredentials;
  /** Persons that exist, spread over the whole table, for the lookup rotation. */
  nationalIds: string[];
}

const OPERATOR: Actor = { name: 'api-bench', role: 'super-admin', entity: null };
// Far above what a 10 s run can send: the benchmark measures the limiter's cost, not its refusals.
const UNLIMITED = 1_000_000_000;
const LOOKUP_IDS = 10_000;
const GRANT_TERMS = {
  purpose: 'API benchmark: means-test lookups',
  legalBasis: 'benchmark on synthetic data',
};

async function grantNaf(ctx: AppContext): Promise<void> {
  await grantAccess(ctx, {
    ...GRANT_TERMS,
    consumer: 'NAF',
    table: 'cspd_personal_info',
    columns: [...CSPD_GRANTED_COLUMNS],
    actor: OPERATOR,
  });
  await grantAccess(ctx, {
    ...GRANT_TERMS,
    consumer: 'NAF',
    table: 'dvld_vehicles',
    columns: [],
    actor: OPERATOR,
  });
}

/** Every step-th row by rowid: deterministic, and spread over the whole index rather than its first pages. */
async function pickNationalIds(knex: Knex): Promise<string[]> {
  const row = await knex('cspd_personal_info').count<Array<{ n: number }>>({ n: '*' });
  const total = Number(row[0]?.n ?? 0);
  const step = Math.max(1, Math.floor(total / LOOKUP_IDS));
  return knex('cspd_personal_info')
    .whereRaw('rowid % ? = 0', [step])
    .limit(LOOKUP_IDS)
    .pluck<string[]>('national_id');
}

/** Generates and loads the demo into `dir`/hub.sqlite, then sets NAF up as the benchmark's caller. */
export async function prepareApiFixture(
  dir: string,
  persons: number,
  print: (line: string) => void,
): Promise<ApiFixture> {
  const ctx = openContext(readConfig({ HUB_DATA_DIR: dir, LOG_LEVEL: 'silent' }));
  try {
    await prepareWarehouse(ctx);
    const summaries = await createDemo(ctx, { persons, seed: 1, load: true }, print);
    const failed = summaries.filter((s) => s.status !== 'succeeded');
    if (failed.length > 0)
      throw new Error(
        `demo load failed: ${failed.map((s) => `${s.connector}: ${s.error ?? s.status}`).join('; ')}`,
      );
    await grantNaf(ctx);
    const client = await createClient(
      ctx,
      { entity: 'NAF', name: 'API benchmark', ratePerMinute: UNLIMITED, ratePerDay: UNLIMITED },
      OPERATOR.name,
    );
    await saveQuery(ctx, QUERY_DEFINITION, OPERATOR.name);
    const nationalIds = await pickNationalIds(ctx.knex);
    if (nationalIds.length === 0) throw new Error('cspd_personal_info is empty');
    return { databaseFile: ctx.config.databaseUrl.slice('sqlite:'.length), client, nationalIds };
  } finally {
    await closeContext(ctx);
  }
}
