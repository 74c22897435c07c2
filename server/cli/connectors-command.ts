import { Command } from 'commander';
import { formatRunLine } from '../services/demo-service.ts';
import {
  fetchConnectorOverview,
  fetchRunHistory,
  runConnectorByName,
} from '../services/connector-service.ts';
import { addDatabaseOption, withContext, type GlobalOptions } from './cli-context.ts';
import { startProgress } from './progress.ts';
import type { CliIo } from './io.ts';

export function buildConnectorsCommand(io: CliIo): Command {
  const connectors = new Command('connectors').description('list, run and inspect connectors');

  addDatabaseOption(
    connectors.command('list').description('connectors with their mode, schedule and last run'),
  ).action((options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      const rows = await fetchConnectorOverview(ctx);
      if (rows.length === 0) io.out(`no connector definitions in ${ctx.config.connectorsDir}`);
      for (const r of rows) {
        io.out(
          `${r.name.padEnd(22)} ${r.entity.padEnd(6)} ${r.table.padEnd(22)} ${r.source.padEnd(5)} ${r.mode.padEnd(11)} ${(r.schedule ?? '-').padEnd(14)} ${r.last_status ?? 'never run'}${r.watermark ? `  watermark ${r.watermark}` : ''}`,
        );
      }
    }),
  );

  addDatabaseOption(
    connectors
      .command('run <name>')
      .description('run a connector now (its own mode, or a full reload with --full)')
      .option('--full', 'replace the whole table, even for an incremental connector')
      .option('--json', 'print the run summary as JSON'),
  ).action((name: string, options: GlobalOptions & { full?: boolean; json?: boolean }) =>
    withContext(options, async (ctx) => {
      const progress = startProgress(name, options.json !== true);
      const summary = await runConnectorByName(ctx, name, {
        full: options.full === true,
        onProgress: (stats) => progress.update(stats),
      }).finally(() => progress.stop());
      if (options.json === true) io.out(JSON.stringify(summary, null, 2));
      else io.out(formatRunLine(summary).trim());
      if (summary.status !== 'succeeded') io.setExitCode(1);
    }),
  );

  addDatabaseOption(
    connectors
      .command('history <name>')
      .description("a connector's runs, newest first")
      .option('--limit <n>', 'how many runs', '20'),
  ).action((name: string, options: GlobalOptions & { limit: string }) =>
    withContext(options, async (ctx) => {
      const limit = Number(options.limit);
      if (!Number.isInteger(limit) || limit < 1) throw new UsageError('--limit must be a positive integer');
      const runs = await fetchRunHistory(ctx, name, limit);
      if (runs.length === 0) io.out(`${name} has not run yet`);
      io.out(
        [
          'run',
          'started_at',
          'mode',
          'trigger',
          'status',
          'read',
          'inserted',
          'updated',
          'deleted',
          'rejected',
        ].join('\t'),
      );
      for (const r of runs) {
        io.out(
          [
            r.id,
            r.started_at,
            r.mode,
            r.trigger,
            r.status,
            r.rows_read,
            r.rows_inserted,
            r.rows_updated,
            r.rows_deleted,
            r.rows_rejected,
          ].join('\t') + (r.error ? `\t${r.error}` : ''),
        );
      }
    }),
  );
  return connectors;
}

export class UsageError extends Error {}
