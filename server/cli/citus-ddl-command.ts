import { Command } from 'commander';
import { buildCitusDdl } from '../../warehouse/copy/build-citus-ddl.ts';
import { fetchCitusDdlInput } from '../../warehouse/copy/fetch-citus-ddl-input.ts';
import { addDatabaseOption, withReadContext, type GlobalOptions } from './cli-context.ts';
import type { CliIo } from './io.ts';

export function buildCitusDdlCommand(io: CliIo): Command {
  return addDatabaseOption(
    new Command('citus-ddl').description(
      'print the SQL that distributes this warehouse on Citus: registry tables and the person key by national_id, configuration as reference tables',
    ),
  ).action((options: GlobalOptions) =>
    withReadContext(options, async (ctx) => {
      io.out(buildCitusDdl(await fetchCitusDdlInput(ctx.warehouse)).trimEnd());
    }),
  );
}
