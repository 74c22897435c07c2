import { availableParallelism } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { NationalIdRule } from '../warehouse/core/national-id.ts';
import type { SecretKeySource } from '../warehouse/keyring/keyring.ts';

const MIN_SECRET_KEY_CHARS = 32;
const DEFAULT_KEY_FILE_NAME = 'secret-keys.json';

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().default('127.0.0.1'),
  HUB_DATA_DIR: z.string().default('./data'),
  HUB_DB: z.string().optional(),
  HUB_CONNECTORS: z.string().optional(),
  HUB_DB_READ: z.string().min(1).optional(),
  HUB_DB_READ_MAX_LAG_MS: z.coerce.number().int().min(0).max(3_600_000).default(1_000),
  HUB_DEMO_PERSONS: z.coerce.number().int().positive().default(10_000),
  HUB_DEMO_SEED: z.coerce.number().int().default(1),
  HUB_NATIONAL_ID_LENGTH: z.coerce.number().int().min(4).max(32).default(10),
  HUB_NATIONAL_ID_CHECK: z.enum(['luhn', 'none']).default('luhn'),
  HUB_SCHEDULER: z.enum(['on', 'off']).default('on'),
  HUB_WORKERS: z.coerce.number().int().min(1).max(256).optional(),
  HUB_DEMO: z.enum(['on', 'off']).optional(),
  HUB_AUDIT_CHECKPOINT_DIR: z.string().optional(),
  HUB_AUDIT_CHECKPOINT_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  /** Comma-separated signature values a development peer sends instead of a signature; treated as absent. Unsafe in production. */
  HUB_DCI_PLACEHOLDER_SIGNATURES: z.string().default(''),
  HUB_DCI_MAPPING: z.string().optional(),
  HUB_TRUST_PROXY: z.string().default('false'),
  HUB_SESSION_IDLE_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(30),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  HUB_SECRET_KEY_FILE: z.string().min(1).optional(),
  // One key, or several separated by commas (the first is current, the others still verify).
  HUB_SECRET_KEY: z
    .string()
    .optional()
    .transform((value) => value?.split(',').map((k) => k.trim()))
    .refine((keys) => keys === undefined || keys.every((k) => k.length >= MIN_SECRET_KEY_CHARS), {
      message: `each key needs at least ${MIN_SECRET_KEY_CHARS} characters (e.g. openssl rand -base64 32)`,
    }),
});

export interface HubConfig {
  port: number;
  host: string;
  dataDir: string;
  databaseUrl: string;
  connectorsDir: string;
  /** A PostgreSQL streaming replica for registry reads, and the lag beyond which reads go to the primary. */
  readReplica: { url: string; maxLagMs: number } | null;
  /**
   * auto: the demo is loaded only into the default embedded warehouse; on: also into a HUB_DB
   * or --db warehouse; off: never. In every mode only into a warehouse that holds no data.
   */
  demo: { persons: number; seed: number; mode: 'auto' | 'on' | 'off' };
  /** True when no HUB_DB or --db named the warehouse: the embedded SQLite file in the data folder. */
  defaultDatabase: boolean;
  nationalIdRule: NationalIdRule;
  scheduler: boolean;
  /** HTTP worker processes of `hub start` (1: one process, no cluster); one per core unless set. */
  workers: number;
  logLevel: string;
  /** The master keys for token signing, TOTP encryption and client-secret hashing: never in the warehouse. */
  secretKeys: SecretKeySource;
  /** Signed audit checkpoints: a folder the database role cannot write, and how often. */
  auditCheckpoints: { dir: string; intervalSeconds: number };
  dci: DciConfig;
  /** express's `trust proxy`: false, true, a hop count, or addresses ('loopback, 10.0.0.1'). */
  trustProxy: boolean | number | string;
  /** A portal session ends after this long without a request. */
  sessionIdleMs: number;
}

export interface DciConfig {
  /** Signature values treated as absent (default none); for test peers only, never in production. */
  placeholderSignatures: string[];
  /** The DCI attribute → warehouse column mapping file; the built-in demo mapping when absent. */
  mappingFile: string | null;
  /** Ed25519 signing key of the DCI APIs, created with mode 0600 on first use. */
  signingKeyFile: string;
}

/**
 * The variables readConfig reads, for the README's table to be checked against; the command line
 * and the loads read a few more (`HUB_DEBUG`, `HUB_LOAD_THREADS`) where they are used.
 */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

export function readConfig(
  env: NodeJS.ProcessEnv = process.env,
  overrides: { databaseUrl?: string; port?: number } = {},
): HubConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new Error(`invalid configuration: ${fields}`);
  }
  const e = parsed.data;
  const dataDir = path.resolve(e.HUB_DATA_DIR);
  const databaseUrl = overrides.databaseUrl ?? e.HUB_DB ?? `sqlite:${path.join(dataDir, 'hub.sqlite')}`;
  if (e.HUB_DB_READ !== undefined && !/^postgres(ql)?:\/\//.test(e.HUB_DB_READ)) {
    throw new Error('invalid configuration: HUB_DB_READ: must be a postgres:// URL of a streaming replica');
  }
  if (e.HUB_DB_READ !== undefined && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    throw new Error(
      'invalid configuration: HUB_DB_READ: a read replica needs a PostgreSQL warehouse (HUB_DB)',
    );
  }
  if (e.HUB_SECRET_KEY !== undefined && e.HUB_SECRET_KEY_FILE !== undefined) {
    throw new Error('invalid configuration: set HUB_SECRET_KEY_FILE or HUB_SECRET_KEY, not both');
  }
  return {
    port: overrides.port ?? e.PORT,
    host: e.HOST,
    dataDir,
    databaseUrl,
    readReplica:
      e.HUB_DB_READ === undefined ? null : { url: e.HUB_DB_READ, maxLagMs: e.HUB_DB_READ_MAX_LAG_MS },
    defaultDatabase: overrides.databaseUrl === undefined && e.HUB_DB === undefined,
    connectorsDir: path.resolve(e.HUB_CONNECTORS ?? path.join(dataDir, 'connectors')),
    demo: { persons: e.HUB_DEMO_PERSONS, seed: e.HUB_DEMO_SEED, mode: e.HUB_DEMO ?? 'auto' },
    nationalIdRule: { length: e.HUB_NATIONAL_ID_LENGTH, checkDigit: e.HUB_NATIONAL_ID_CHECK },
    scheduler: e.HUB_SCHEDULER === 'on',
    workers: e.HUB_WORKERS ?? availableParallelism(),
    logLevel: e.LOG_LEVEL,
    // Only the default file in the data folder is created on first use: a mistyped
    // HUB_SECRET_KEY_FILE must not silently start a new key.
    secretKeys:
      e.HUB_SECRET_KEY !== undefined
        ? { kind: 'env', keys: e.HUB_SECRET_KEY }
        : e.HUB_SECRET_KEY_FILE !== undefined
          ? { kind: 'file', path: path.resolve(e.HUB_SECRET_KEY_FILE), createIfMissing: false }
          : { kind: 'file', path: path.join(dataDir, DEFAULT_KEY_FILE_NAME), createIfMissing: true },
    auditCheckpoints: {
      dir: path.resolve(e.HUB_AUDIT_CHECKPOINT_DIR ?? path.join(dataDir, 'audit-checkpoints')),
      intervalSeconds: e.HUB_AUDIT_CHECKPOINT_SECONDS,
    },
    dci: {
      placeholderSignatures: parseList(e.HUB_DCI_PLACEHOLDER_SIGNATURES),
      mappingFile: e.HUB_DCI_MAPPING === undefined ? null : path.resolve(e.HUB_DCI_MAPPING),
      signingKeyFile: path.join(dataDir, 'dci-signing-key.pem'),
    },
    trustProxy: readTrustProxy(e.HUB_TRUST_PROXY),
    sessionIdleMs: e.HUB_SESSION_IDLE_MINUTES * 60_000,
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

function readTrustProxy(value: string): boolean | number | string {
  const text = value.trim().toLowerCase();
  if (text === '' || text === 'false' || text === 'off') return false;
  if (text === 'true' || text === 'on') return true;
  if (/^\d+$/.test(text)) return Number(text);
  return value.trim();
}
