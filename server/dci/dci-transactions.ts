import type { AppContext } from '../context.ts';
import { isoNow } from '../../warehouse/core/clock.ts';
import type { DciRegistry } from './dci-mapping.ts';

type Json = Record<string, unknown>;
export type TxnType = 'search' | 'subscribe' | 'unsubscribe';

interface TransactionRow {
  correlation_id: string;
  registry: string;
  client_id: string;
  transaction_id: string;
  txn_type: TxnType;
  status: string;
  reference_ids: string;
  response: string | null;
}

/** Statuses only: a search's records are dropped, so a later status check returns no data the caller might since have lost. */
function stripRecords(response: Json): Json {
  const items = response.search_response;
  if (!Array.isArray(items)) return response;
  return {
    ...response,
    search_response: items.map((item: Json) =>
      Object.fromEntries(Object.entries(item).filter(([k]) => k !== 'data')),
    ),
  };
}

export async function saveTransaction(
  ctx: AppContext,
  input: {
    correlationId: string;
    registry: DciRegistry;
    clientId: string;
    transactionId: string;
    txnType: TxnType;
    referenceIds: string[];
    status: string;
    response: Json | null;
  },
): Promise<void> {
  const now = isoNow(ctx.clock);
  const row = {
    status: input.status,
    response: input.response === null ? null : JSON.stringify(stripRecords(input.response)),
    updated_at: now,
  };
  const updated = await ctx
    .knex('hub_dci_transactions')
    .where({ correlation_id: input.correlationId })
    .update(row);
  if (updated > 0) return;
  await ctx.knex('hub_dci_transactions').insert({
    ...row,
    correlation_id: input.correlationId,
    registry: input.registry,
    client_id: input.clientId,
    transaction_id: input.transactionId.slice(0, 99),
    txn_type: input.txnType,
    reference_ids: JSON.stringify(input.referenceIds),
    created_at: now,
  });
}

/** The caller's own transactions only, found by transaction_id, correlation_id, reference ids or subscription codes. */
export async function fetchTransactions(
  ctx: AppContext,
  input: {
    registry: DciRegistry;
    clientId: string;
    txnType: string;
    attributeType: string;
    attributeValue: unknown;
  },
): Promise<Array<{ correlationId: string; transactionId: string; status: string; response: Json | null }>> {
  const query = ctx
    .knex<TransactionRow>('hub_dci_transactions')
    .where({ registry: input.registry, client_id: input.clientId });
  if (['search', 'subscribe', 'unsubscribe'].includes(input.txnType))
    query.where({ txn_type: input.txnType as TxnType });
  const value = input.attributeValue;
  const list = (Array.isArray(value) ? value : [value]).map(String);
  if (input.attributeType === 'transaction_id') query.whereIn('transaction_id', list.slice(0, 100));
  else if (input.attributeType === 'correlation_id') query.whereIn('correlation_id', list.slice(0, 100));
  const rows = await query.orderBy('created_at').limit(1000).select<TransactionRow[]>('*');
  const wanted = new Set(list);
  const matching = rows.filter((row) => {
    if (input.attributeType === 'reference_id_list')
      return (JSON.parse(row.reference_ids) as string[]).some((r) => wanted.has(r));
    if (input.attributeType === 'subscription_code_list')
      return (JSON.parse(row.reference_ids) as string[]).some((r) => wanted.has(r));
    return true;
  });
  return matching.map((row) => ({
    correlationId: row.correlation_id,
    transactionId: row.transaction_id,
    status: row.status,
    response: row.response === null ? null : (JSON.parse(row.response) as Json),
  }));
}
