import os from 'node:os';
import { Command } from 'commander';
import type { Actor } from '../../privileges/actor.ts';
import {
  fetchGrants,
  grantAccess,
  revokeAccess,
  type GrantChange,
  type TableAccess,
} from '../../privileges/grants.ts';
import { prepareWarehouse } from '../services/connector-service.ts';
import { addDatabaseOption, withContext, type GlobalOptions } from './cli-context.ts';
import type { CliIo } from './io.ts';

/** `hub grant`, `hub revoke` and `hub grants`, run by the operator with super-admin rights. */
export function buildGrantCommands(io: CliIo): Command[] {
  const grant = addDatabaseOption(
    new Command('grant')
      .argument('<consumer-entity>', 'the entity that may read, e.g. NAF')
      .argument('<table>', 'a warehouse table')
      .argument('[column...]', 'the columns it may read (none: the whole table)')
      .description('give an entity read access to a table or some of its columns'),
  ).action((consumer: string, table: string, columns: string[], options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      io.out(
        formatChange(
          'granted',
          await grantAccess(ctx, { consumer, table, columns, actor: buildOperatorActor() }),
        ),
      );
    }),
  );

  const revoke = addDatabaseOption(
    new Command('revoke')
      .argument('<consumer-entity>', 'the entity that reads')
      .argument('<table>', 'a warehouse table')
      .argument('[column...]', 'the columns to take back (none: the whole table)')
      .description("take back an entity's read access to a table or some of its columns"),
  ).action((consumer: string, table: string, columns: string[], options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      io.out(
        formatChange(
          'revoked',
          await revokeAccess(ctx, { consumer, table, columns, actor: buildOperatorActor() }),
        ),
      );
    }),
  );

  const list = addDatabaseOption(
    new Command('grants')
      .description('list grants with who granted them and when')
      .option('--entity <code>', 'only the grants of this consuming entity')
      .option('--table <name>', 'only the grants on this table'),
  ).action((options: GlobalOptions & { entity?: string; table?: string }) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      const grants = await fetchGrants(ctx, {
        ...(options.entity === undefined ? {} : { entity: options.entity }),
        ...(options.table === undefined ? {} : { table: options.table }),
      });
      if (grants.length === 0) {
        io.out('no grants');
        return;
      }
      io.out(['entity', 'table', 'column', 'granted_by', 'granted_at'].join('\t'));
      for (const g of grants)
        io.out([g.entity, g.table, g.column ?? '(all columns)', g.grantedBy, g.grantedAt].join('\t'));
    }),
  );

  return [grant, revoke, list];
}

function buildOperatorActor(): Actor {
  return { name: `cli:${os.userInfo().username}`, role: 'super-admin', entity: null };
}

function formatChange(verb: 'granted' | 'revoked', change: GrantChange): string {
  const unchanged = sameAccess(change.before, change.after) ? ' (unchanged)' : '';
  if (!change.after.wholeTable && change.after.columns.length === 0) {
    return `${verb}: ${change.consumer} can no longer read ${change.table}${unchanged}`;
  }
  const columns = change.after.wholeTable ? 'all columns' : change.after.columns.join(', ');
  return `${verb}: ${change.consumer} can read ${change.table} (${columns})${unchanged}`;
}

function sameAccess(a: TableAccess, b: TableAccess): boolean {
  return a.wholeTable === b.wholeTable && a.columns.join(',') === b.columns.join(',');
}
