import path from 'node:path';
import { Command } from 'commander';
import { fetchWhoRead } from '../../warehouse/audit/who-read.ts';
import { migrateWarehouse } from '../../warehouse/migrations/migrate.ts';
import { fetchCheckpointKeys, verifyAuditLog, writeCheckpointNow } from '../services/audit-log-service.ts';
import { addDatabaseOption, withContext, withReadContext, type GlobalOptions } from './cli-context.ts';
import { parsePositiveInteger } from './clients-command.ts';
import type { CliIo } from './io.ts';

export function buildAuditCommand(io: CliIo): Command {
  const audit = new Command('audit').description('the tamper-evident audit log');

  addDatabaseOption(
    audit
      .command('verify')
      .description(
        'recompute the hash chain and compare it with the latest signed checkpoint; exit 1 naming what is broken or missing',
      ),
  ).action((options: GlobalOptions) =>
    withReadContext(options, async (ctx) => {
      const report = await verifyAuditLog(ctx);
      if (report.problems.length > 0) {
        for (const problem of report.problems) io.err(`hub: ${problem}`);
        io.setExitCode(1);
        return;
      }
      const anchor =
        report.checkpoint === null
          ? `no checkpoint yet in ${report.checkpointDir}`
          : `the checkpoint of ${report.checkpoint.checkpoint.at} (${report.checkpoint.checkpoint.rows} rows, ${path.basename(report.checkpoint.file)}) holds`;
      io.out(`audit chain ok: ${report.rows} rows; ${anchor}`);
    }),
  );

  addDatabaseOption(
    audit
      .command('checkpoint')
      .description("sign the chain's row count and head hash into the checkpoint folder now"),
  ).action((options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await migrateWarehouse(ctx.knex);
      const written = await writeCheckpointNow(ctx, fetchCheckpointKeys(ctx));
      if (written === null) io.out('no new audit rows since the latest checkpoint');
      else io.out(`audit checkpoint written: ${written.checkpoint.rows} rows, ${written.file}`);
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
