import { Command } from 'commander';
import { verifyAuditChain } from '../../warehouse/audit/verify-audit-chain.ts';
import { fetchWhoRead } from '../../warehouse/audit/who-read.ts';
import { addDatabaseOption, withReadContext, type GlobalOptions } from './cli-context.ts';
import { parsePositiveInteger } from './clients-command.ts';
import type { CliIo } from './io.ts';

export function buildAuditCommand(io: CliIo): Command {
  const audit = new Command('audit').description('the tamper-evident audit log');

  addDatabaseOption(
    audit.command('verify').description('recompute the hash chain; exit 1 naming the first broken row'),
  ).action((options: GlobalOptions) =>
    withReadContext(options, async (ctx) => {
      const report = await verifyAuditChain(ctx.knex);
      if (report.ok) {
        io.out(`audit chain ok: ${report.rows} rows`);
        return;
      }
      io.err(`hub: audit chain broken at row ${report.brokenAt}: ${report.reason}`);
      io.setExitCode(1);
    }),
  );

  addDatabaseOption(
    audit
      .command('who-read <national_id>')
      .description("who read a person's data: when, which entity and client, which columns; newest first")
      .option('--limit <n>', 'how many events', parsePositiveInteger('--limit'), 100)
      .option('--json', 'print the events as JSON'),
  ).action((nationalId: string, options: GlobalOptions & { limit: number; json?: boolean }) =>
    withReadContext(options, async (ctx) => {
      const rows = await fetchWhoRead(ctx.knex, nationalId, { limit: options.limit });
      if (options.json === true) {
        io.out(JSON.stringify(rows, null, 2));
        return;
      }
      if (rows.length === 0) io.out(`no recorded reads of ${nationalId}`);
      for (const r of rows) {
        io.out(
          [r.at, r.entity ?? '-', r.actor, r.action, r.target ?? '-', r.columns.join(',') || '-'].join('\t'),
        );
      }
    }),
  );
  return audit;
}
