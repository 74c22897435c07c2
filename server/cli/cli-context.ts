import { userInfo } from 'node:os';
import type { Command } from 'commander';
import pino from 'pino';
import { readConfig, type HubConfig } from '../config.ts';
import { closeContext, openContext, type AppContext } from '../context.ts';

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
  const config = readCliConfig(options);
  const ctx = openContext(config, {
    logger: pino({ level: process.env.LOG_LEVEL ?? 'warn' }, pino.destination(2)),
  });
  try {
    return await work(ctx);
  } finally {
    await closeContext(ctx);
  }
}

/** Who the audit log names for what a person does at the command line. */
export const buildCliActor = () => `cli:${userInfo().username}`;
