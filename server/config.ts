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
  /** Comma-separated signature values a development peer sends instead of a signature; treated as absent. Unsafe in production. */
  HUB_DCI_PLACEHOLDER_SIGNATURES: z.string().default(''),
  HUB_DCI_MAPPING: z.string().optional(),
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
  dci: DciConfig;
}

export interface DciConfig {
  /** Signature values treated as absent (default none); for test peers only, never in production. */
  placeholderSignatures: string[];
  /** The DCI attribute → warehouse column mapping file; the built-in demo mapping when absent. */
  mappingFile: string | null;
  /** Ed25519 signing key of the DCI APIs, created with mode 0600 on first use. */
  signingKeyFile: string;
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
    dci: {
      placeholderSignatures: parseList(e.HUB_DCI_PLACEHOLDER_SIGNATURES),
      mappingFile: e.HUB_DCI_MAPPING === undefined ? null : path.resolve(e.HUB_DCI_MAPPING),
      signingKeyFile: path.join(dataDir, 'dci-signing-key.pem'),
    },
  };
}

/** A JSON array of strings (for values holding commas), or comma-separated values. */
function parseList(text: string): string[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('[')) {
    const parsed: unknown = JSON.parse(trimmed);
    if (!Array.isArray(parsed) || !parsed.every((v) => typeof v === 'string')) {
      throw new Error(
        'invalid configuration: HUB_DCI_PLACEHOLDER_SIGNATURES: a JSON list must hold strings only',
      );
    }
    return parsed;
  }
  return trimmed
    .split(',')
    .map((v) => v.trim())
    .filter((v) => v !== '');
}
