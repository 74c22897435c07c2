import type { Knex } from 'knex';
import pino, { type Logger } from 'pino';
import { type Clock, systemClock } from '../warehouse/core/clock.ts';
import type { NationalIdRule } from '../warehouse/core/national-id.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../warehouse/db.ts';
import { dialectFor, type Dialect } from '../warehouse/dialects/index.ts';
import type { HubConfig } from './config.ts';

/** Everything a use case needs, passed explicitly: no module-level database, config or catalog. */
export interface AppContext {
  config: HubConfig;
  warehouse: Warehouse;
  knex: Knex;
  dialect: Dialect;
  clock: Clock;
  logger: Logger;
  nationalIdRule: NationalIdRule;
}

export function openContext(config: HubConfig, options: { clock?: Clock; logger?: Logger } = {}): AppContext {
  const warehouse = openWarehouse(config.databaseUrl);
  return {
    config,
    warehouse,
    knex: warehouse.knex,
    dialect: dialectFor(warehouse.dialect),
    clock: options.clock ?? systemClock,
    logger: options.logger ?? pino({ level: config.logLevel }, pino.destination(2)),
    nationalIdRule: config.nationalIdRule,
  };
}

export async function closeContext(ctx: AppContext): Promise<void> {
  await closeWarehouse(ctx.warehouse);
}
