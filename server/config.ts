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
  HUB_SECRET_KEY_FILE: z.string().optional(),
  HUB_SECRET_KEY: z.string().min(32, 'must be at least 32 characters').optional(),
  HUB_AUDIT_CHECKPOINT_DIR: z.string().optional(),
  HUB_AUDIT_CHECKPOINT_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
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
  /** The hub's secret, kept out of the warehouse: HUB_SECRET_KEY, else the file (created on first use). */
  secretKey: string | undefined;
  secretKeyFile: string;
  /** Signed audit checkpoints: a folder the database role cannot write, and how often. */
  auditCheckpoints: { dir: string; intervalSeconds: number };
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
    secretKey: e.HUB_SECRET_KEY,
    secretKeyFile: path.resolve(e.HUB_SECRET_KEY_FILE ?? path.join(dataDir, 'secret.key')),
    auditCheckpoints: {
      dir: path.resolve(e.HUB_AUDIT_CHECKPOINT_DIR ?? path.join(dataDir, 'audit-checkpoints')),
      intervalSeconds: e.HUB_AUDIT_CHECKPOINT_SECONDS,
    },
  };
}
