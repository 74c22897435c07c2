import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify as stringifyYaml } from 'yaml';
import type { ConnectorDefinitionInput } from '../definition.ts';
import type { AgencyRegistry, DemoContext } from './agency-registry.ts';
import { buildCspdConnectors, CSPD_SOURCE_FILE, openCspdRegistry } from './cspd-registry.ts';
import { createNationalIdSequence } from './demo-national-ids.ts';
import { buildDvldConnectors, DVLD_SOURCE_FILE, openDvldRegistry } from './dvld-registry.ts';
import { buildMoeConnectors, MOE_SOURCE_FILE, openMoeRegistry } from './moe-registry.ts';
import { buildNafConnectors, NAF_SOURCE_FILE, openNafRegistry } from './naf-registry.ts';
import { generateHouseholds } from './population.ts';
import { createRandom } from './seeded-random.ts';
import { buildSscConnectors, openSscRegistry, SSC_SOURCE_FILE } from './ssc-registry.ts';
import type { TableTally } from './tally.ts';

export interface DemoOptions {
  /** Folder that receives sources/, connectors/ and manifest.json. */
  dir: string;
  persons: number;
  seed: number;
}

export interface DemoConnectorCounts {
  table: string;
  source_rows: number;
  bad_rows: number;
  /** Rows a correct full load leaves in the warehouse: source rows less bad and soft-deleted rows. */
  expected_rows: number;
}

export interface DemoManifest {
  persons: number;
  seed: number;
  connectors: Record<string, DemoConnectorCounts>;
}

/** The most persons the demo generates; ghost IDs of bad rows take numbers after them. */
export const MAX_DEMO_PERSONS = 100_000_000;
const SOURCE_FILES = [CSPD_SOURCE_FILE, SSC_SOURCE_FILE, DVLD_SOURCE_FILE, MOE_SOURCE_FILE, NAF_SOURCE_FILE];
const PROGRESS_EVERY = 10_000;
const FLUSH_EVERY_HOUSEHOLDS = 32;

export function buildDemoConnectors(): ConnectorDefinitionInput[] {
  return [
    ...buildCspdConnectors(),
    ...buildSscConnectors(),
    ...buildDvldConnectors(),
    ...buildMoeConnectors(),
    ...buildNafConnectors(),
  ];
}

/**
 * Generates Poveria: the agencies' own systems under sources/, one connector definition per
 * warehouse table under connectors/, and manifest.json with what a correct load must give.
 * Same persons and seed, same bytes.
 */
export async function generateDemo(
  options: DemoOptions,
  onProgress?: (done: number, total: number) => void,
): Promise<DemoManifest> {
  assertDemoOptions(options);
  const sourcesDir = path.join(options.dir, 'sources');
  const connectorsDir = path.join(options.dir, 'connectors');
  await mkdir(sourcesDir, { recursive: true });
  await mkdir(connectorsDir, { recursive: true });
  // SQLite sources would otherwise be appended to.
  await Promise.all(SOURCE_FILES.map((f) => rm(path.join(sourcesDir, f), { force: true })));

  const nationalIdOf = createNationalIdSequence(options.seed);
  let ghosts = 0;
  const ctx: DemoContext = {
    sourcesDir,
    random: (stream) => createRandom(options.seed, stream),
    nextGhostId: () => nationalIdOf(options.persons + ghosts++),
  };

  const registries: AgencyRegistry[] = [];
  let tallies: TableTally[];
  try {
    for (const open of [
      openCspdRegistry,
      openSscRegistry,
      openDvldRegistry,
      openMoeRegistry,
      openNafRegistry,
    ]) {
      registries.push(open(ctx));
    }
    let done = 0;
    let reported = 0;
    for (const household of generateHouseholds({
      persons: options.persons,
      seed: options.seed,
      nationalIdOf,
    })) {
      for (const registry of registries) registry.addHousehold(household);
      done += household.members.length;
      if (household.index % FLUSH_EVERY_HOUSEHOLDS === 0) {
        for (const registry of registries) await registry.flush();
      }
      if (onProgress !== undefined && done - reported >= PROGRESS_EVERY) {
        onProgress(done, options.persons);
        reported = done;
      }
    }
    tallies = [];
    for (const registry of registries) tallies.push(...(await registry.finish()));
    onProgress?.(done, options.persons);
  } catch (err) {
    for (const registry of registries) registry.abort();
    throw err;
  }

  for (const definition of buildDemoConnectors()) {
    await writeFile(
      path.join(connectorsDir, `${definition.name}.yaml`),
      stringifyYaml(definition, { lineWidth: 0 }),
    );
  }
  const manifest = buildManifest(options, tallies);
  await writeFile(path.join(options.dir, 'manifest.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return manifest;
}

function buildManifest(options: DemoOptions, tallies: TableTally[]): DemoManifest {
  const connectors: Record<string, DemoConnectorCounts> = {};
  for (const t of tallies) {
    connectors[t.connector] = {
      table: t.table,
      source_rows: t.sourceRows,
      bad_rows: t.badRows,
      expected_rows: t.sourceRows - t.badRows - t.deletedRows,
    };
  }
  return { persons: options.persons, seed: options.seed, connectors };
}

function assertDemoOptions(options: DemoOptions): void {
  if (!Number.isSafeInteger(options.persons) || options.persons < 1 || options.persons > MAX_DEMO_PERSONS) {
    throw new RangeError(
      `persons must be a whole number from 1 to ${MAX_DEMO_PERSONS}, got ${options.persons}`,
    );
  }
  if (!Number.isSafeInteger(options.seed) || options.seed < 0) {
    throw new RangeError(`seed must be a whole number of at least 0, got ${options.seed}`);
  }
}
