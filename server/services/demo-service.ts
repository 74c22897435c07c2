import { readdir } from 'node:fs/promises';
import { generateDemo } from '../../connectors/demo/generate-demo.ts';
import { runConnector, type RunSummary } from '../../connectors/run-connector.ts';
import type { LoadStats } from '../../warehouse/load/load-types.ts';
import type { AppContext } from '../context.ts';
import { prepareWarehouse } from './connector-service.ts';
import { seedDemoAccess, type DemoAccess } from './demo-access.ts';

export interface DemoOptions {
  persons: number;
  seed: number;
  load: boolean;
}

/** Writes Poveria's agency registries and connector definitions, then (optionally) loads every connector. */
export async function createDemo(
  ctx: AppContext,
  options: DemoOptions,
  print: (line: string) => void,
  track?: (connector: string) => { update(stats: LoadStats): void; stop(): void },
): Promise<RunSummary[]> {
  const started = Date.now();
  const manifest = await generateDemo({
    dir: ctx.config.dataDir,
    persons: options.persons,
    seed: options.seed,
  });
  print(
    `Demo country Poveria: ${manifest.persons.toLocaleString('en')} persons (seed ${manifest.seed}) written to ${ctx.config.dataDir} in ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  if (!options.load) return [];
  const { connectors } = await prepareWarehouse(ctx);
  const summaries: RunSummary[] = [];
  for (const def of connectors) {
    const progress = track?.(def.name);
    const summary = await runConnector(def, ctx, {
      full: true,
      trigger: 'startup',
      onProgress: (stats) => progress?.update(stats),
    }).finally(() => progress?.stop());
    summaries.push(summary);
    print(formatRunLine(summary));
  }
  return summaries;
}

export function formatRunLine(s: RunSummary): string {
  const seconds = (new Date(s.finished_at).getTime() - new Date(s.started_at).getTime()) / 1000;
  const counts = `${s.read} read, ${s.inserted} inserted, ${s.updated} updated, ${s.deleted} deleted, ${s.rejected} rejected`;
  return `  ${s.connector.padEnd(22)} ${s.status.padEnd(9)} ${s.mode.padEnd(11)} ${counts} (${seconds.toFixed(1)} s)${s.error ? ` — ${s.error}` : ''}`;
}

/**
 * npm start on an empty data folder: the demo is generated and loaded, and NAF gets grants, a
 * saved query, an API client and portal users, so the hub answers its first call at once.
 * Demo users and a demo client with printed secrets are a way in: they go only into the
 * default embedded warehouse (or any with HUB_DEMO=on), and never into one that holds data.
 */
export async function loadDemoIfEmpty(
  ctx: AppContext,
  connectorCount: number,
  print: (line: string) => void,
): Promise<DemoAccess | null> {
  if (ctx.config.demo.mode === 'off' || connectorCount > 0) return null;
  const existing = await readdir(ctx.config.connectorsDir).catch(() => []);
  if (existing.length > 0) return null;
  if (ctx.config.demo.mode === 'auto' && !ctx.config.defaultDatabase) {
    print(
      `No connectors in ${ctx.config.connectorsDir}; the demo is not loaded into ${ctx.warehouse.displayUrl} unless HUB_DEMO=on.`,
    );
    return null;
  }
  const holding = await findHeldData(ctx);
  if (holding !== null) {
    print(
      `No connectors in ${ctx.config.connectorsDir}; the demo is not loaded: ${ctx.warehouse.displayUrl} already holds ${holding}.`,
    );
    return null;
  }
  print(`No connectors in ${ctx.config.connectorsDir}: generating the demo country.`);
  await createDemo(ctx, { persons: ctx.config.demo.persons, seed: ctx.config.demo.seed, load: true }, print);
  return seedDemoAccess(ctx);
}

const DATA_TABLES: Array<[table: string, what: string]> = [
  ['hub_tables', 'registry tables'],
  ['hub_clients', 'API clients'],
  ['hub_users', 'portal users'],
  ['hub_grants', 'grants'],
  ['hub_queries', 'saved queries'],
];

/** What the warehouse already holds that a demo must not mix with, or null when it is empty. */
async function findHeldData(ctx: AppContext): Promise<string | null> {
  for (const [table, what] of DATA_TABLES) {
    if ((await ctx.knex(table).first(ctx.knex.raw('1 as one'))) !== undefined) return what;
  }
  return null;
}
