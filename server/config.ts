import path from 'node:path';
import { z } from 'zod';
import type { NationalIdRule } from '../warehouse/core/national-id.ts';

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default('127.0.0.1'),
  HUB_DATA_DIR: z.string().default('./data'),
  HUB_DB: z.string().optional(),
  HUB_CONNECTORS: z.string().optional(),
  HUB_DEMO_PERSONS: z.coerce.number().int().positive().default(10_000),
  HUB_DEMO_SEED: z.coerce.number().int().default(1),
  HUB_NATIONAL_ID_LENGTH: z.coerce.number().int().min(4).max(32).default(10),
  HUB_NATIONAL_ID_CHECK: z.enum(['luhn', 'none']).default('luhn'),
  HUB_SCHEDULER: z.enum(['on', 'off']).default('on'),
  HUB_TRUST_PROXY: z.string().default('false'),
  HUB_SESSION_IDLE_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(30),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface HubConfig {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string;
  connectorsDir: string;
  demo: { persons: number; seed: number };
  nationalIdRule: NationalIdRule;
  scheduler: boolean;
  logLevel: string;
  /** express's `trust proxy`: false, true, a hop count, or addresses ('loopback, 10.0.0.1'). */
  trustProxy: boolean | number | string;
  /** A portal session ends after this long without a request. */
  sessionIdleMs: number;
}

/** The only place that reads process.env. */
export function readConfig(env: NodeJS.ProcessEnv = process.env, overrides: { databaseUrl?: string; port?: number } = {}): HubConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${fields}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.HUB_DATA_DIR);
  return {
    port: overrides.port ?? e.PORT,
    host: e.HOST,
    dataDir,
    databaseUrl: overrides.databaseUrl ?? e.HUB_DB ?? `sqlite:${path.join(dataDir, 'hub.sqlite')}`,
    connectorsDir: path.resolve(e.HUB_CONNECTORS ?? path.join(dataDir, 'connectors')),
    demo: { persons: e.HUB_DEMO_PERSONS, seed: e.HUB_DEMO_SEED },
    nationalIdRule: { length: e.HUB_NATIONAL_ID_LENGTH, checkDigit: e.HUB_NATIONAL_ID_CHECK },
    scheduler: e.HUB_SCHEDULER === 'on',
    logLevel: e.LOG_LEVEL,
    trustProxy: readTrustProxy(e.HUB_TRUST_PROXY),
    sessionIdleMs: e.HUB_SESSION_IDLE_MINUTES * 60_000,
  };
}

function readTrustProxy(value: string): boolean | number | string {
  const text = value.trim().toLowerCase();
  if (text === '' || text === 'false' || text === 'off') return false;
  if (text === 'true' || text === 'on') return true;
  if (/^\d+$/.test(text)) return Number(text);
  return value.trim();
}
