import { Command } from 'commander';
import type { Actor } from '../../privileges/actor.ts';
import {
  fetchGrants,
  grantAccess,
  revokeAccess,
  type AccessInput,
  type Grant,
  type GrantChange,
  type TableAccess,
} from '../../privileges/grants.ts';
import { previewRevoke, type RevokePreview } from '../../privileges/preview-revoke.ts';
import { prepareWarehouse } from '../services/connector-service.ts';
import {
  addDatabaseOption,
  buildCliActor,
  withContext,
  withReadContext,
  type GlobalOptions,
} from './cli-context.ts';
import { UsageError } from './connectors-command.ts';
import type { CliIo } from './io.ts';

interface GrantOptions extends GlobalOptions {
  purpose?: string;
  legalBasis?: string;
  expires?: string;
}

/** `hub grant`, `hub revoke` and `hub grants`, run by the operator with super-admin rights. */
export function buildGrantCommands(io: CliIo): Command[] {
  const grant = buildAccessCommand({
    name: 'grant',
    consumer: 'the entity that may read, e.g. NAF',
    columns: 'the columns it may read (none: the whole table)',
    description:
      'give an entity read access to a table or some of its columns, saying why, on what legal basis and until when',
  })
    .option('--purpose <text>', 'why the entity reads it (required), e.g. "means test for cash assistance"')
    .option('--legal-basis <text>', 'the law or agreement that allows it (required)')
    .option(
      '--expires <date>',
      'last day the grant counts (YYYY-MM-DD, UTC) or an ISO 8601 time; default: no expiry',
    )
    .action((consumer: string, table: string, columns: string[], options: GrantOptions) => {
      const { purpose, legalBasis } = options;
      if (purpose === undefined)
        throw new UsageError(`--purpose is required: say why ${consumer} reads ${table}`);
      if (legalBasis === undefined)
        throw new UsageError('--legal-basis is required: name the law or agreement that allows it');
      return withContext(options, async (ctx) => {
        await prepareWarehouse(ctx);
        const input = {
          ...buildInput(consumer, table, columns),
          purpose,
          legalBasis,
          expires: options.expires ?? null,
        };
        io.out(formatChange('granted', await grantAccess(ctx, input)));
      });
    });

  const revoke = buildAccessCommand({
    name: 'revoke',
    consumer: 'the entity that reads',
    columns: 'the columns to take back (none: the whole table)',
    description: "take back an entity's read access to a table or some of its columns",
  })
    .option('--dry-run', 'list the saved queries and API clients the revoke would break, and change nothing')
    .action(
      (consumer: string, table: string, columns: string[], options: GlobalOptions & { dryRun?: boolean }) => {
        const input = buildInput(consumer, table, columns);
        if (options.dryRun === true) {
          return withReadContext(options, async (ctx) => {
            for (const line of formatPreview(await previewRevoke(ctx, input))) io.out(line);
          });
        }
        return withContext(options, async (ctx) => {
          await prepareWarehouse(ctx);
          io.out(formatChange('revoked', await revokeAccess(ctx, input)));
        });
      },
    );

  const list = addDatabaseOption(
    new Command('grants')
      .description('list grants: purpose, legal basis, expiry, who granted them and when')
      .option('--entity <code>', 'only the grants of this consuming entity')
      .option('--table <name>', 'only the grants on this table'),
  ).action((options: GlobalOptions & { entity?: string; table?: string }) =>
    withReadContext(options, async (ctx) => {
      const grants = await fetchGrants(ctx, {
        ...(options.entity === undefined ? {} : { entity: options.entity }),
        ...(options.table === undefined ? {} : { table: options.table }),
      });
      if (grants.length === 0) {
        io.out('no grants');
        return;
      }
      io.out(
        ['entity', 'table', 'column', 'purpose', 'legal_basis', 'expires', 'granted_by', 'granted_at'].join(
          '\t',
        ),
      );
      for (const g of grants) io.out(formatGrant(g));
    }),
  );

  return [grant, revoke, list];
}

interface AccessCommandSpec {
  name: 'grant' | 'revoke';
  consumer: string;
  columns: string;
  description: string;
}

function buildAccessCommand(spec: AccessCommandSpec): Command {
  return addDatabaseOption(
    new Command(spec.name)
      .argument('<consumer-entity>', spec.consumer)
      .argument('<table>', 'a warehouse table')
      .argument('[column...]', spec.columns)
      .description(spec.description),
  );
}

/** The operator at the command line acts as super admin. */
function buildInput(consumer: string, table: string, columns: string[]): AccessInput {
  const actor: Actor = { name: buildCliActor(), role: 'super-admin', entity: null };
  return { consumer, table, columns, actor };
}

const NOT_RECORDED = '(not recorded)';

function formatGrant(g: Grant): string {
  const expires = g.expiresAt === null ? 'never' : g.active ? g.expiresAt : `${g.expiresAt} (expired)`;
  return [
    g.entity,
    g.table,
    g.column ?? '(all columns)',
    g.purpose ?? NOT_RECORDED,
    g.legalBasis ?? NOT_RECORDED,
    expires,
    g.grantedBy,
    g.grantedAt,
  ].join('\t');
}

function formatChange(verb: 'granted' | 'revoked', change: GrantChange): string {
  const unchanged = sameAccess(change.before, change.after) ? ' (unchanged)' : '';
  if (!change.after.wholeTable && change.after.columns.length === 0) {
    return `${verb}: ${change.consumer} can no longer read ${change.table}${unchanged}`;
  }
  return `${verb}: ${change.consumer} can read ${change.table} (${describeAccess(change.after)})${unchanged}`;
}

function formatPreview(p: RevokePreview): string[] {
  const after =
    !p.after.wholeTable && p.after.columns.length === 0
      ? `${p.consumer} could no longer read ${p.table}`
      : `${p.consumer} could read ${p.table} (${describeAccess(p.after)})`;
  const lines = [
    `dry run, nothing changed: after this revoke ${after}${sameAccess(p.before, p.after) ? ' (unchanged)' : ''}`,
  ];
  lines.push(
    p.queries.length === 0 ? 'saved queries that would break: none' : 'saved queries that would break:',
  );
  for (const q of p.queries) lines.push(`  ${q.name}\t${q.denied.join(', ')}`);
  lines.push(p.clients.length === 0 ? 'API clients affected: none' : 'API clients affected:');
  for (const c of p.clients) lines.push(`  ${c.client_id}\t${c.name}`);
  return lines;
}

function describeAccess(access: TableAccess): string {
  return access.wholeTable ? 'all columns' : access.columns.join(', ');
}

function sameAccess(a: TableAccess, b: TableAccess): boolean {
  return a.wholeTable === b.wholeTable && a.columns.join(',') === b.columns.join(',');
}
