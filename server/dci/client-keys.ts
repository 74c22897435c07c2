import { createPublicKey } from 'node:crypto';
import { recordAudit } from '../../warehouse/audit/record-audit.ts';
import { HubError, invalidRequest, notFound } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { inWriteTransaction } from '../../warehouse/write-transaction.ts';

/**
 * Registers the Ed25519 public key a client signs its DCI messages with (PEM, SPKI), or removes
 * it with null. From then on the client's DCI requests must carry a signature that verifies.
 */
export async function saveClientPublicKey(
  ctx: AppContext,
  clientId: string,
  pem: string | null,
  actor: string,
): Promise<{ client_id: string; key: string | null }> {
  let normalized: string | null = null;
  if (pem !== null) {
    // A private key would derive the public one, but it must never travel to the hub.
    if (pem.includes('PRIVATE KEY'))
      throw invalidRequest('give the public key (openssl pkey -pubout), not the private key');
    let key;
    try {
      key = createPublicKey(pem);
    } catch {
      throw invalidRequest('the key file is not a PEM public key');
    }
    if (key.asymmetricKeyType !== 'ed25519')
      throw invalidRequest(`the key is ${key.asymmetricKeyType ?? 'unknown'}, not Ed25519`);
    normalized = key.export({ type: 'spki', format: 'pem' }).toString();
  }
  await inWriteTransaction(ctx.knex, async (trx) => {
    const client = await trx('hub_clients')
      .where({ client_id: clientId })
      .first<{ entity: string } | undefined>('entity');
    if (client === undefined) throw notFound(`no API client ${JSON.stringify(clientId)}`);
    const updated = await trx('hub_clients')
      .where({ client_id: clientId })
      .update({ dci_public_key: normalized });
    if (updated !== 1)
      throw new HubError('conflict', 409, `client ${clientId} changed while its key was saved`);
    await recordAudit(trx, ctx.clock, {
      actor,
      entity: client.entity,
      action: 'client.set_key',
      target: clientId,
      details: { signing: normalized !== null },
    });
  });
  return { client_id: clientId, key: normalized };
}
