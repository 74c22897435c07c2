import { readFile } from 'node:fs/promises';
import { Command, InvalidArgumentError } from 'commander';
import { saveClientPublicKey } from '../dci/client-keys.ts';
import { createClient, disableClient, fetchClients, rotateClientSecret } from '../services/client-service.ts';
import { prepareWarehouse } from '../services/connector-service.ts';
import { addDatabaseOption, buildCliActor, withContext, type GlobalOptions } from './cli-context.ts';
import type { CliIo } from './io.ts';

interface CreateOptions extends GlobalOptions {
  name?: string;
  ratePerMinute?: number;
  ratePerDay?: number;
  allowIp?: string[];
}

export const parsePositiveInteger = (option: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new InvalidArgumentError(`${option} must be a positive integer`);
  return n;
};

export function buildClientsCommand(io: CliIo): Command {
  const clients = new Command('clients').description(
    'API clients of consuming systems: create, list, disable, rotate secrets',
  );

  addDatabaseOption(
    clients
      .command('create <entity>')
      .description(
        'create an API client for an entity; prints its id and secret as JSON (the secret is shown only once)',
      )
      .option('--name <name>', 'a name people recognize, e.g. "NAF MIS"')
      .option('--rate-per-minute <n>', 'calls allowed per minute', parsePositiveInteger('--rate-per-minute'))
      .option('--rate-per-day <n>', 'calls allowed per day', parsePositiveInteger('--rate-per-day'))
      .option('--allow-ip <ip...>', 'only accept calls from these addresses (default: any)'),
  ).action((entity: string, options: CreateOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      const credentials = await createClient(
        ctx,
        {
          entity,
          ...(options.name === undefined ? {} : { name: options.name }),
          ...(options.ratePerMinute === undefined ? {} : { ratePerMinute: options.ratePerMinute }),
          ...(options.ratePerDay === undefined ? {} : { ratePerDay: options.ratePerDay }),
          ...(options.allowIp === undefined ? {} : { allowedIps: options.allowIp }),
        },
        buildCliActor(),
      );
      io.out(JSON.stringify(credentials, null, 2));
    }),
  );

  addDatabaseOption(
    clients
      .command('list')
      .description('API clients with their entity, status and limits')
      .option('--json', 'print the clients as JSON'),
  ).action((options: GlobalOptions & { json?: boolean }) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      const rows = await fetchClients(ctx);
      if (options.json === true) {
        io.out(JSON.stringify(rows, null, 2));
        return;
      }
      if (rows.length === 0) io.out('no API clients yet: create one with hub clients create <entity>');
      for (const c of rows) {
        const ips = c.allowed_ips.length > 0 ? c.allowed_ips.join(',') : 'any-ip';
        io.out(
          `${c.client_id.padEnd(16)} ${c.entity.padEnd(6)} ${c.status.padEnd(8)} ${c.rate_per_minute}/min ${c.rate_per_day}/day ${ips}  ${c.name}`,
        );
      }
    }),
  );

  addDatabaseOption(
    clients.command('disable <client_id>').description('refuse all further calls and tokens of a client'),
  ).action((clientId: string, options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      await disableClient(ctx, clientId, buildCliActor());
      io.out(`disabled ${clientId}`);
    }),
  );

  addDatabaseOption(
    clients
      .command('rotate <client_id>')
      .description('issue a new secret; the old secret and tokens issued with it stop working'),
  ).action((clientId: string, options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      io.out(JSON.stringify(await rotateClientSecret(ctx, clientId, buildCliActor()), null, 2));
    }),
  );
  addDatabaseOption(
    clients
      .command('set-key <client_id> <file.pem>')
      .description(
        'register the Ed25519 public key (PEM) a client signs its DCI messages with; "none" removes it',
      ),
  ).action((clientId: string, file: string, options: GlobalOptions) =>
    withContext(options, async (ctx) => {
      await prepareWarehouse(ctx);
      const pem = file === 'none' ? null : await readKeyFile(file);
      await saveClientPublicKey(ctx, clientId, pem, buildCliActor());
      io.out(
        pem === null
          ? `${clientId} no longer signs its DCI messages`
          : `${clientId} must now sign its DCI messages with this key`,
      );
    }),
  );
  return clients;
}

async function readKeyFile(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? 'error'})`, {
      cause: err,
    });
  }
}
