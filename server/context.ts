import type { Knex } from 'knex';
import pino, { type Logger } from 'pino';
import { type Clock, systemClock } from '../warehouse/core/clock.ts';
import type { NationalIdRule } from '../warehouse/core/national-id.ts';
import { closeWarehouse, openWarehouse, type Warehouse } from '../warehouse/db.ts';
import { dialectFor, type Dialect } from '../warehouse/dialects/index.ts';
import type { HubConfig } from './config.ts';
import { createAbilityCache, type AbilityCache } from '../privileges/ability-cache.ts';
import { CatalogCache } from '../warehouse/catalog-cache.ts';
import { AuditWriter } from '../warehouse/audit/audit-writer.ts';
import { openKeyring, type Keyring } from '../warehouse/keyring/keyring.ts';
import { PreparedReads } from '../warehouse/prepared-reads.ts';
import { ReadReplica } from '../warehouse/read-replica.ts';
import { VerifiedTokens } from './services/verified-tokens.ts';
import { runInThisProcess, type ConnectorRunner } from './services/connector-runner.ts';
import { LoadProcesses } from './services/load-process.ts';

/** Everything a use case needs, passed explicitly: no module-level database, config or catalog. */
export interface AppContext {
  config: HubConfig;
  warehouse: Warehouse;
  /** Writes and transactional reads. */
  knex: Knex;
  /** Reads that must never wait for a write, such as every consumer API read (see Warehouse.reader). */
  reader: Knex;
  /** HUB_DB_READ: a streaming replica for registry reads (pickRegistryReader), null without one. */
  replica: ReadReplica | null;
  dialect: Dialect;
  clock: Clock;
  logger: Logger;
  nationalIdRule: NationalIdRule;
  /** The reads every API request makes (client, grants version, person lookup), prepared once. */
  reads: PreparedReads;
  /** Per-process state shared by requests: abilities under the grants version, the catalog, the audit group commit. */
  abilities: AbilityCache;
  catalog: CatalogCache;
  audit: AuditWriter;
  /** Bearer tokens whose signature and claims verified, until they expire (checked against the keyring on each use). */
  tokens: VerifiedTokens;
  /** The hub's secret keys (from configuration, never the warehouse): subkeys by purpose. */
  keyring: Keyring;
  /** Where the runs the hub starts itself (schedules, the portal's Run now) are carried out. */
  connectorRuns: ConnectorRunner;
}

export function openContext(
  config: HubConfig,
  options: {
    clock?: Clock;
    logger?: Logger;
    readOnly?: boolean;
    /** Each connector run in a process of its own (`hub start`), not in this one. */
    loadProcesses?: boolean;
  } = {},
): AppContext {
  const logger = options.logger ?? pino({ level: config.logLevel }, pino.destination(2));
  const warehouse = openWarehouse(config.databaseUrl, {
    readOnly: options.readOnly === true,
    log: (message) => logger.debug({ driver: message }, 'warehouse driver message'),
  });
  const clock = options.clock ?? systemClock;
  const dialect = dialectFor(warehouse.dialect);
  const replica =
    config.readReplica === null
      ? null
      : new ReadReplica({
          ...config.readReplica,
          primary: warehouse.reader,
          onChange: (state, url) =>
            (state.status === 'ok' ? logger.info.bind(logger) : logger.warn.bind(logger))(
              { replica: url, status: state.status, lag_ms: state.lagMs, reason: state.reason },
              state.status === 'ok'
                ? 'read replica serves registry reads'
                : 'registry reads go to the primary',
            ),
        });
  // The runner carries out runs with the context it belongs to: it is added once the rest is built.
  const ctx: Omit<AppContext, 'connectorRuns'> & { connectorRuns?: ConnectorRunner } = {
    config,
    warehouse,
    knex: warehouse.knex,
    reader: warehouse.reader,
    replica,
    dialect,
    clock,
    logger,
    nationalIdRule: config.nationalIdRule,
    reads: new PreparedReads(warehouse),
    abilities: createAbilityCache(),
    catalog: new CatalogCache(warehouse.reader, clock),
    audit: new AuditWriter(warehouse.knex, clock, { gatherMs: dialect.auditGatherMs }),
    tokens: new VerifiedTokens(),
    keyring: openKeyring(config.secretKeys, {
      now: () => clock.now(),
      onCreate: (file) =>
        logger.warn(
          { file },
          'created a new secret key file: back it up, and keep it out of database backups',
        ),
    }),
  };
  const whole = ctx as AppContext;
  whole.connectorRuns = options.loadProcesses === true ? new LoadProcesses(whole) : runInThisProcess(whole);
  return whole;
}

/**
 * Where registry data is read (person lookups, saved-query runs, DCI searches): the read replica
 * while it is within its allowed lag, else the primary's readers. Everything that decides what a
 * caller may read — grants and their version, clients, sessions, the catalog, saved definitions —
 * and the audit stay on the primary, so a revoke counts from the next request however far the
 * replica lags.
 */
export function pickRegistryReader(ctx: AppContext): Knex {
  return ctx.replica?.pick() ?? ctx.reader;
}

export async function closeContext(ctx: AppContext): Promise<void> {
  await ctx.connectorRuns.close();
  await ctx.replica?.close();
  await ctx.audit.close();
  await ctx.reads.close();
  await closeWarehouse(ctx.warehouse);
}
