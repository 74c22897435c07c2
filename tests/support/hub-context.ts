import pino from 'pino';
import { readConfig } from '../../server/config.ts';
import { openContext, type AppContext } from '../../server/context.ts';
import type { Clock } from '../../warehouse/core/clock.ts';

/** A real hub context on a test database, quiet unless HUB_TEST_LOG is set. */
export function openTestContext(
  databaseUrl: string,
  dataDir: string,
  options: { clock?: Clock; env?: NodeJS.ProcessEnv; loadProcesses?: boolean } = {},
): AppContext {
  const config = readConfig({ ...options.env, HUB_DATA_DIR: dataDir }, { databaseUrl });
  return openContext(config, {
    logger: pino({ level: process.env.HUB_TEST_LOG ?? 'silent' }),
    ...(options.clock ? { clock: options.clock } : {}),
    loadProcesses: options.loadProcesses === true,
  });
}

/** A clock that moves only when told to. */
export function createManualClock(start = '2026-01-01T00:00:00.000Z'): Clock & { advance(ms: number): void } {
  let now = new Date(start).getTime();
  return {
    now: () => new Date(now),
    advance: (ms) => {
      now += ms;
    },
  };
}

/** Why and on what ground a test grants: every new grant must say both. */
export const GRANT_TERMS = {
  purpose: 'means test for cash assistance',
  legalBasis: 'National Aid Fund Law, art. 4',
};

const ENTITY_LABELS = {
  NAF: { label_en: 'National Aid Fund', label_ar: 'صندوق المعونة الوطنية' },
  CSPD: { label_en: 'Civil Status', label_ar: 'الأحوال المدنية' },
};

/** Entities as an operator declares them, for tests whose clients and users must belong to one. */
export async function insertEntities(
  ctx: AppContext,
  ...codes: Array<keyof typeof ENTITY_LABELS>
): Promise<void> {
  await ctx.knex('hub_entities').insert(codes.map((code) => ({ code, ...ENTITY_LABELS[code] })));
}
