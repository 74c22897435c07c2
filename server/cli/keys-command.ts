import { Command } from 'commander';
import { HubError } from '../../warehouse/core/errors.ts';
import { pruneKeyFile, rotateKeyFile } from '../../warehouse/keyring/key-file.ts';
import { openKeyring } from '../../warehouse/keyring/keyring.ts';
import { fetchClientSecretKids } from '../services/client-service.ts';
import { prepareWarehouse } from '../services/connector-service.ts';
import { TOKEN_TTL_SECONDS } from '../services/token-service.ts';
import { resealTotpSecrets } from '../services/user-service.ts';
import { addDatabaseOption, readCliConfig, withContext, type GlobalOptions } from './cli-context.ts';
import type { CliIo } from './io.ts';

/** The key file's path, or a clear refusal when the keys come from HUB_SECRET_KEY. */
function readKeyFilePath(options: GlobalOptions, action: string): string {
  const source = readCliConfig(options).secretKeys;
  if (source.kind === 'env') {
    throw new HubError(
      'keys_from_environment',
      400,
      `the keys come from HUB_SECRET_KEY, not a file: to ${action}, edit that list (new key first, comma-separated)`,
    );
  }
  return source.path;
}

export function buildKeysCommand(io: CliIo): Command {
  const keys = new Command('keys').description(
    'the secret keys that sign tokens and encrypt TOTP secrets (HUB_SECRET_KEY_FILE or HUB_SECRET_KEY): list, rotate, prune',
  );

  keys
    .command('list')
    .description('the keys by id, the current one first (never the keys themselves)')
    .option('--json', 'print the keys as JSON')
    .action((options: { json?: boolean }) => {
      const config = readCliConfig({});
      const source = config.secretKeys;
      // Listing must not create a key file where there is none.
      const keyring = openKeyring(source.kind === 'file' ? { ...source, createIfMissing: false } : source);
      const list = keyring.listKeys();
      if (options.json === true) {
        io.out(JSON.stringify(list, null, 2));
        return;
      }
      io.out(
        config.secretKeys.kind === 'env' ? 'keys from HUB_SECRET_KEY' : `key file ${config.secretKeys.path}`,
      );
      for (const k of list) {
        const state = k.current ? 'current ' : 'previous';
        io.out(`${k.kid}  ${state}  created ${k.created_at ?? '-'}  retired ${k.retired_at ?? '-'}`);
      }
    });

  keys
    .command('rotate')
    .description(
      'add a new current key; older keys stay to verify tokens until they expire (creates the key file if there is none)',
    )
    .action(() => {
      const file = readKeyFilePath({}, 'rotate');
      const { kid, previous } = rotateKeyFile(file, new Date());
      io.out(`new current key ${kid} in ${file}`);
      if (previous.length > 0) {
        io.out(
          `kept to verify: ${previous.join(', ')}; tokens they signed expire within ${TOKEN_TTL_SECONDS / 60} minutes`,
        );
        io.out('then run hub keys prune to move TOTP secrets to the new key and remove the old keys');
      }
    });

  addDatabaseOption(
    keys
      .command('prune')
      .description(
        `re-encrypt TOTP secrets under the current key, then remove previous keys retired more than ${TOKEN_TTL_SECONDS / 60} minutes ago`,
      )
      .option(
        '--all',
        'remove every previous key now: tokens they signed stop working at once (after a leak)',
      )
      .option(
        '--force',
        'remove keys even when API client secrets are still hashed under them (those clients need hub clients rotate)',
      ),
  ).action((options: GlobalOptions & { all?: boolean; force?: boolean }) =>
    withContext(options, async (ctx) => {
      const file = readKeyFilePath(options, 'remove a key');
      await prepareWarehouse(ctx);
      const { resealed, unreadable } = await resealTotpSecrets(ctx);
      io.out(`TOTP secrets moved to key ${ctx.keyring.currentKid()}: ${resealed}`);
      if (unreadable.length > 0)
        io.err(
          `hub: no key opens the TOTP secret of: ${unreadable.join(', ')} (hub users reset-totp <username>)`,
        );
      const cutoff = Date.now() - TOKEN_TTL_SECONDS * 1000;
      const removable = ctx.keyring
        .listKeys()
        .filter(
          (k) =>
            !k.current &&
            (options.all === true || (k.retired_at !== null && Date.parse(k.retired_at) <= cutoff)),
        )
        .map((k) => k.kid);
      const stillUsed = (await fetchClientSecretKids(ctx)).filter((c) => removable.includes(c.kid));
      if (stillUsed.length > 0 && options.force !== true) {
        throw new HubError(
          'key_in_use',
          409,
          `not removed: the secrets of ${stillUsed.length} API client(s) are hashed under these keys (${stillUsed
            .map((c) => `${c.client_id} (${c.kid})`)
            .join(
              ', ',
            )}); each moves to the current key at its next token request, or run hub clients rotate <id>; --force removes the keys anyway`,
        );
      }
      const removed = pruneKeyFile(file, (k) => removable.includes(k.kid));
      io.out(removed.length > 0 ? `removed: ${removed.join(', ')}` : 'no key to remove');
    }),
  );
  return keys;
}
