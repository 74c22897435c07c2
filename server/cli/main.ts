import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { HubError } from '../../warehouse/core/errors.ts';
import cluster from 'node:cluster';
import { prepareWarehouse } from '../services/connector-service.ts';
import { addDatabaseOption, readCliConfig, withContext, type GlobalOptions } from './cli-context.ts';
import { buildConnectorsCommand, UsageError } from './connectors-command.ts';
import { buildClientsCommand } from './clients-command.ts';
import { buildUsersCommand } from './users-command.ts';
import { buildKeysCommand } from './keys-command.ts';
import { buildAuditCommand } from './audit-command.ts';
import { buildCopyCommand } from './copy-command.ts';
import { buildCitusDdlCommand } from './citus-ddl-command.ts';
import { buildGrantCommands } from './grants-command.ts';
import { processIo, type CliIo } from './io.ts';
import { buildQueriesCommand } from './queries-command.ts';
import { buildTablesCommand } from './tables-command.ts';
import { startProgress } from './progress.ts';

const positiveInteger = (what: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${what} must be a positive integer`);
  return n;
};

export function buildProgram(io: CliIo): Command {
  const program = new Command('hub').description(
    'Registry Hub: agency registries in one warehouse keyed by national ID',
  );

  addDatabaseOption(
    program.command('start').description('migrate, load the demo on an empty data folder, and serve the hub'),
  )
    .option('--port <n>', 'HTTP port (default PORT or 3000)', (v) => Number(v))
    .option(
      '--workers <n>',
      'HTTP worker processes sharing the port (default HUB_WORKERS or one per core; 1: a single process)',
      positiveInteger('--workers'),
    )
    .action(async (options: GlobalOptions & { port?: number; workers?: number }) => {
      const config = readCliConfig(options, options.port === undefined ? {} : { port: options.port });
      if (
        options.port !== undefined &&
        !(Number.isInteger(options.port) && options.port >= 0 && options.port < 65536)
      ) {
        throw new UsageError('--port must be a port number');
      }
      // The server's modules (express, the portal, the DCI routes) are loaded by this command
      // alone: every other command starts without them (`hub connectors list` in 1.4 s and 135 MB
      // instead of 1.6 s and 155 MB).
      const { serveHubWorker, startHubCluster } = await import('../hub-cluster.ts');
      // A worker runs this same command line; it serves and leaves the rest to the primary.
      if (cluster.isWorker) return serveHubWorker(config);
      const workers = options.workers ?? config.workers;
      const { startHub } = await import('../main.ts');
      const hub =
        workers === 1 ? await startHub(config, io.out) : await startHubCluster(config, workers, io.out);
      await new Promise<void>((resolve, reject) => {
        const shutdown = () => void hub.stop().then(resolve, reject);
        process.once('SIGINT', shutdown);
        process.once('SIGTERM', shutdown);
        // Workers that keep dying: stop what is left, then fail with the reason.
        if ('failed' in hub)
          hub.failed.catch((err: unknown) => {
            const reason = err instanceof Error ? err : new Error(String(err));
            void hub.stop().then(() => reject(reason), reject);
          });
      });
    });

  addDatabaseOption(
    program.command('migrate').description("create or update the hub's tables and the registry tables"),
  ).action((options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      const { migrations, connectors, invalid } = await prepareWarehouse(ctx);
      io.out(migrations.length > 0 ? `applied: ${migrations.join(', ')}` : 'schema is up to date');
      io.out(`${connectors.length} connector definitions registered from ${ctx.config.connectorsDir}`);
      // The others are registered all the same; the exit code tells a script that one was skipped.
      for (const bad of invalid) io.err(`hub: skipped invalid definition ${bad.message}`);
      if (invalid.length > 0) io.setExitCode(1);
    }),
  );

  addDatabaseOption(
    program
      .command('demo')
      .description("write the demo country's agency registries and connectors, then load them"),
  )
    .option('--persons <n>', 'how many persons', positiveInteger('--persons'), 10_000)
    .option('--seed <s>', 'random seed (same seed, same data)', (v) => Number(v), 1)
    .option('--no-load', 'only write the sources and connector definitions')
    .action((options: GlobalOptions & { persons: number; seed: number; load: boolean }) =>
      withContext(options, async (ctx) => {
        if (!Number.isInteger(options.seed)) throw new UsageError('--seed must be an integer');
        await prepareWarehouse(ctx);
        const { createDemo } = await import('../services/demo-service.ts');
        const summaries = await createDemo(ctx, options, io.out, (name) => startProgress(name, true));
        if (summaries.some((s) => s.status !== 'succeeded')) io.setExitCode(1);
      }),
    );

  program.addCommand(buildConnectorsCommand(io));
  program.addCommand(buildClientsCommand(io));
  program.addCommand(buildUsersCommand(io));
  program.addCommand(buildKeysCommand(io));
  program.addCommand(buildAuditCommand(io));
  for (const command of buildGrantCommands(io)) program.addCommand(command);
  program.addCommand(buildQueriesCommand(io));
  program.addCommand(buildTablesCommand(io));
  program.addCommand(buildCopyCommand(io));
  program.addCommand(buildCitusDdlCommand(io));
  applyToAll(program, (command) =>
    command
      .exitOverride()
      .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) }),
  );
  return program;
}

/** Commands built apart and added with addCommand do not inherit the program's settings. */
function applyToAll(command: Command, apply: (command: Command) => void): void {
  apply(command);
  for (const sub of command.commands) applyToAll(sub, apply);
}

/** Runs the command line; returns the exit code (1 for errors, 2 for usage errors). */
export async function runCli(argv: string[], io: CliIo = processIo): Promise<number> {
  const program = buildProgram(io);
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      return err.exitCode === 0 ? 0 : 2;
    }
    if (err instanceof UsageError) {
      io.err(`hub: ${err.message}`);
      return 2;
    }
    // One line, always: a driver's multi-line message or an empty AggregateError must not reach the console raw.
    const message = err instanceof Error ? err.message.split('\n')[0]!.trim() : String(err);
    io.err(
      `hub: ${message === '' ? `unexpected error (${(err as Error).name}); HUB_DEBUG=1 shows it` : message}`,
    );
    if (!(err instanceof HubError) && process.env.HUB_DEBUG === '1') io.err(String((err as Error).stack));
    return 1;
  }
}
