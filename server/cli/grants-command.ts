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
import { addDatabaseOption, buildCliActor, withContext, type GlobalOptions } from './cli-context.ts';
import type { CliIo } from './io.ts';

/** `hub grant`, `hub revoke` and `hub grants`, run by the operator with super-admin rights. */
export function buildGrantCommands(io: CliIo): Command[] {
  const grant = buildAccessCommand(io, {
    name: 'grant',
    consumer: 'the entity that may read, e.g. NAF',
    columns: 'the columns it may read (none: the whole table)',
    description: 'give an entity read access to a table or some of its columns',
    verb: 'granted',
    change: grantAccess,
  });
  const revoke = buildAccessCommand(io, {
    name: 'revoke',
    consumer: 'the entity that reads',
    columns: 'the columns to take back (none: the whole table)',
    description: "take back an entity's read access to a table or some of its columns",
    verb: 'revoked',
    change: revokeAccess,
  });

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

interface AccessCommandSpec {
  name: 'grant' | 'revoke';
  consumer: string;
  columns: string;
  description: string;
  verb: 'granted' | 'revoked';
  change: typeof grantAccess;
}

function buildAccessCommand(io: CliIo, spec: AccessCommandSpec): Command {
  return addDatabaseOption(
    new Command(spec.name)
      .argument('<consumer-entity>', spec.consumer)
      .argument('<table>', 'a warehouse table')
      .argument('[column...]', spec.columns)
      .description(spec.description),
  ).action((consumer: string, table: string, columns: string[], options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      io.out(
        formatChange(
          spec.verb,
          await spec.change(ctx, { consumer, table, columns, actor: buildOperatorActor() }),
        ),
      );
    }),
  );
}

/** The operator at the command line acts as super admin. */
function buildOperatorActor(): Actor {
  return { name: buildCliActor(), role: 'super-admin', entity: null };
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
