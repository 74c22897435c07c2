import { Command } from 'commander';
import { copyHub } from '../../warehouse/copy/copy-hub.ts';
import { addDatabaseOption, readCliConfig, type GlobalOptions } from './cli-context.ts';
import type { CliIo } from './io.ts';

export function buildCopyCommand(io: CliIo): Command {
  return addDatabaseOption(
    new Command('copy')
      .description(
        'copy the whole hub from --db (the source) to an empty warehouse: registry tables, catalog, person key, grants, clients, users, saved queries, connector state and the audit log',
      )
      .requiredOption('--to <url>', 'the target warehouse: postgres://... or sqlite:PATH')
      .option('--force', 'replace a target that already holds data'),
  ).action(async (options: GlobalOptions & { to: string; force?: boolean }) => {
    const sourceUrl = readCliConfig(options).databaseUrl;
    const started = Date.now();
    const report = await copyHub(sourceUrl, options.to, {
      force: options.force === true,
      onTable: (t) =>
        io.out(`  ${t.table.padEnd(28)} ${t.rows.toLocaleString('en').padStart(12)} rows  (${t.kind})`),
    });
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    io.out(
      `copied ${report.tables.length} tables, ${report.rows.toLocaleString('en')} rows from ${report.source} to ${report.target} in ${seconds} s`,
    );
    if (report.sequences.length > 0)
      io.out(`id counters moved past the copied ids: ${report.sequences.join(', ')}`);
    if (report.audit.ok) {
      io.out(`audit chain on the target: ok, ${report.audit.rows.toLocaleString('en')} rows`);
      return;
    }
    io.err(
      `hub: audit chain on the target broken at row ${report.audit.brokenAt}: ${report.audit.reason} (as it was in the source)`,
    );
    io.setExitCode(1);
  });
}
