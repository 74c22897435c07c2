import { rm } from 'node:fs/promises';
import path from 'node:path';
import { readConnectorDefinitions, type ConnectorDefinition } from '../../connectors/definition.ts';
import { closeContext, type AppContext } from '../../server/context.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';
import { createTempDir } from './databases.ts';
import { openTestContext } from './hub-context.ts';
import {
  peopleDefinition,
  writeDefinition,
  writePeopleSource,
  type PersonSourceRow,
} from './registry-fixture.ts';

/** A hub in a folder of its own, whose one connector, reg-people, reads `people.sqlite` there. */
export interface PeopleHub {
  ctx: AppContext;
  sourceFile: string;
  /** Writes reg-people again: peopleDefinition with the hub's overrides, then these. */
  define(overrides?: Record<string, unknown>): Promise<string>;
  /** reg-people as the hub reads it from its connectors folder now. */
  connector(): Promise<ConnectorDefinition>;
  close(): Promise<void>;
}

/** The source holds `rows`; every definition of reg-people starts from `overrides`; the warehouse is ready. */
export async function openPeopleHub(
  databaseUrl: string,
  dirPrefix: string,
  rows: PersonSourceRow[],
  overrides: Record<string, unknown> = {},
): Promise<PeopleHub> {
  const dir = await createTempDir(dirPrefix);
  const sourceFile = path.join(dir, 'people.sqlite');
  writePeopleSource(sourceFile, rows);
  const ctx = openTestContext(databaseUrl, dir);
  const hub: PeopleHub = {
    ctx,
    sourceFile,
    define: (more = {}) =>
      writeDefinition(
        ctx.config.connectorsDir,
        'reg-people',
        peopleDefinition(sourceFile, { ...overrides, ...more }),
      ),
    connector: async () => (await readConnectorDefinitions(ctx.config.connectorsDir))[0]!,
    async close() {
      await closeContext(ctx);
      await rm(dir, { recursive: true, force: true });
    },
  };
  try {
    await hub.define();
    await prepareWarehouse(ctx);
  } catch (err) {
    // The suite's after hook has no hub to close when this fails.
    await hub.close();
    throw err;
  }
  return hub;
}
