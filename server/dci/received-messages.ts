import { isoNow } from '../../warehouse/core/clock.ts';
import type { AppContext } from '../context.ts';
import type { ApiCaller } from '../services/token-service.ts';
import type { DciEnvelope } from './dci-envelope.ts';
import { readTransactionId } from './dci-envelope.ts';
import type { DciRegistry } from './dci-mapping.ts';

/** Keeps a callback a peer sent to the hub (on-search, notify, ...), as received, for whoever acts on it. */
export async function saveReceivedMessage(
  ctx: AppContext,
  input: {
    registry: DciRegistry;
    caller: ApiCaller;
    action: string;
    envelope: DciEnvelope;
    correlationId: string;
  },
): Promise<void> {
  const { envelope } = input;
  await ctx.knex('hub_dci_received').insert({
    registry: input.registry,
    client_id: input.caller.clientId,
    action: input.action,
    message_id: envelope.header.message_id,
    transaction_id: readTransactionId(envelope.message).slice(0, 99) || null,
    correlation_id: input.correlationId,
    body: JSON.stringify({
      signature: envelope.signature,
      header: envelope.raw.header,
      message: envelope.raw.message,
    }),
    received_at: isoNow(ctx.clock),
  });
  await ctx.audit.append({
    actor: input.caller.clientId,
    entity: input.caller.entity,
    action: 'dci.receive',
    target: `POST /dci/${input.registry} ${input.action}`,
    details: { message_id: envelope.header.message_id, correlation_id: input.correlationId },
  });
}
