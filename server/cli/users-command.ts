import { Command, Option } from 'commander';
import { prepareWarehouse } from '../services/connector-service.ts';
import { createUser, resetUserTotp, USER_ROLES } from '../services/user-service.ts';
import { addDatabaseOption, buildCliActor, withContext, type GlobalOptions } from './cli-context.ts';
import type { CliIo } from './io.ts';

export function buildUsersCommand(io: CliIo): Command {
  const users = new Command('users').description('people who sign in to the admin portal');

  addDatabaseOption(
    users
      .command('create <username>')
      .description(
        'create a portal user; prints the password and the otpauth:// URI for an authenticator app (shown only once)',
      )
      .requiredOption('--entity <code>', 'the entity the user works for, e.g. NAF')
      .addOption(
        new Option('--role <role>', 'what the user may do').choices(USER_ROLES).makeOptionMandatory(),
      ),
  ).action((username: string, options: GlobalOptions & { entity: string; role: string }) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      const user = await createUser(
        ctx,
        { username, entity: options.entity, role: options.role },
        buildCliActor(),
      );
      io.out(`password: ${user.password}`);
      io.out(`otpauth: ${user.otpauth_uri}`);
    }),
  );

  addDatabaseOption(
    users
      .command('reset-totp <username>')
      .description(
        'give the user a new TOTP secret (lost phone, or cleared by the upgrade); prints the otpauth:// URI once',
      ),
  ).action((username: string, options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      io.out(`otpauth: ${(await resetUserTotp(ctx, username, buildCliActor())).otpauth_uri}`);
    }),
  );
  return users;
}
