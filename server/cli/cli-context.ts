import { userInfo } from 'node:os';
import type { Command } from 'commander';
import pino from 'pino';
import { readConfig, type HubConfig } from '../config.ts';
import { closeContext, openContext, type AppContext } from '../context.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import { describeConnectionError } from '../../warehouse/db.ts';
import { findPendingMigrations } from '../../warehouse/migrations/migrate.ts';

export interface GlobalOptions {
  db?: string;
}

export function addDatabaseOption(command: Command): Command {
  return command.option(
    '--db <url>',
    'warehouse URL: sqlite:PATH, postgres://... or mssql://... (default: HUB_DB or ./data/hub.sqlite)',
  );
}

export function readCliConfig(options: GlobalOptions, overrides: { port?: number } = {}): HubConfig {
  return readConfig(process.env, {
    ...(options.db === undefined ? {} : { databaseUrl: options.db }),
    ...overrides,
  });
}

/** Opens the warehouse for one command and always closes it, so the process can exit. */
export async function withContext<T>(
  options: GlobalOptions,
  work: (ctx: AppContext) => Promise<T>,
): Promise<T> {
  return runInContext(options, false, work);
}

/**
 * For commands that only look: the warehouse must exist and be migrated already. A mistyped
 * --db then fails with one line instead of creating (and migrating) a new empty warehouse, and
 * looking never changes the schema. SQLite files are opened read-only.
 */
export async function withReadContext<T>(
  options: GlobalOptions,
  work: (ctx: AppContext) => Promise<T>,
): Promise<T> {
  return runInContext(options, true, async (ctx) => {
    const pending = await findPendingMigrations(ctx.knex);
    if (pending.length > 0) {
      throw new HubError(
        'not_migrated',
        409,
        `${ctx.warehouse.displayUrl} is not a migrated hub warehouse (missing ${pending.join(', ')}): check --db, or run hub migrate`,
      );
    }
    return work(ctx);
  });
}

async function runInContext<T>(
  options: GlobalOptions,
  readOnly: boolean,
  work: (ctx: AppContext) => Promise<T>,
): Promise<T> {
  const config = readCliConfig(options);
  const ctx = openContext(config, {
    readOnly,
    logger: pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2)),
  });
  try {
    return await work(ctx);
  } catch (err) {
    const reason = describeConnectionError(err);
    if (reason === null) throw err;
    throw new HubError(
      'warehouse_unavailable',
      503,
      `cannot open the warehouse ${ctx.warehouse.displayUrl}: ${reason}`,
    );
  } finally {
    await closeContext(ctx).catch(() => undefined);
  }
}

/** Who the audit log names for what a person does at the command line. */
export const buildCliActor = () => `cli:${userInfo().username}`;
