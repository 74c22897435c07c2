import type { AppContext } from '../context.ts';
import type { ApiCaller } from '../services/token-service.ts';
import { badRequest } from './dci-error.ts';
import { readTransactionId } from './dci-envelope.ts';
import type { DciRegistry } from './dci-mapping.ts';
import { fetchTransactions } from './dci-transactions.ts';

type Json = Record<string, unknown>;

const ATTRIBUTE_TYPES = ['transaction_id', 'reference_id_list', 'correlation_id', 'subscription_code_list'];
const TXN_TYPES = ['search', 'subscribe', 'unsubscribe', 'subscibe', 'receipt'];

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The answer txn_type of each YAML: CRVS says on-search, the social registry search. */
function answerTxnType(registry: DciRegistry, asked: string): string {
  const base = asked === 'subscibe' ? 'subscribe' : asked;
  if (registry === 'social')
    return base === 'subscribe' ? 'subscibe' : base === 'unsubscribe' ? 'search' : base;
  return `on-${base === 'receipt' ? 'search' : base}`;
}

/**
 * The status of the caller's earlier transactions. Only statuses are kept, so a search's
 * records are never handed back here; an unknown transaction is a rejected item, not an error.
 */
export async function buildTxnStatus(
  ctx: AppContext,
  caller: ApiCaller,
  input: { registry: DciRegistry; message: Json; correlationId: string },
): Promise<Json> {
  const request = input.message.txnstatus_request;
  if (!isObject(request)) throw badRequest('message.txnstatus_request: required, an object');
  const { txn_type: txnType, attribute_type: attributeType, attribute_value: attributeValue } = request;
  if (typeof txnType !== 'string' || !TXN_TYPES.includes(txnType))
    throw badRequest(
      `message.txnstatus_request.txn_type: must be one of ${TXN_TYPES.slice(0, 3).join(', ')}`,
    );
  if (typeof attributeType !== 'string' || !ATTRIBUTE_TYPES.includes(attributeType))
    throw badRequest(
      `message.txnstatus_request.attribute_type: must be one of ${ATTRIBUTE_TYPES.join(', ')}`,
    );
  if (attributeValue === undefined || attributeValue === null || isObject(attributeValue))
    throw badRequest('message.txnstatus_request.attribute_value: required');
  const referenceId =
    typeof request.reference_id === 'string' || typeof request.reference_id === 'number'
      ? String(request.reference_id)
      : '';
  const kind = txnType === 'subscibe' ? 'subscribe' : txnType === 'receipt' ? 'search' : txnType;
  const found = await fetchTransactions(ctx, {
    registry: input.registry,
    clientId: caller.clientId,
    txnType: kind,
    attributeType,
    attributeValue,
  });
  const transactionId = readTransactionId(input.message);
  const timestamp = ctx.clock.now().toISOString();
  const latest = found.at(-1);
  let txnStatus: Json;
  if (latest?.response != null) {
    txnStatus = latest.response;
  } else if (latest !== undefined) {
    // Accepted, still being answered.
    txnStatus = {
      transaction_id: latest.transactionId,
      correlation_id: latest.correlationId,
      search_response: [{ reference_id: referenceId, timestamp, status: 'pdng' }],
    };
  } else {
    txnStatus = {
      transaction_id: transactionId,
      correlation_id: input.correlationId,
      search_response: [
        {
          reference_id: referenceId,
          timestamp,
          status: 'rjct',
          status_reason_code: 'rjct.reference_id.invalid',
          status_reason_message: `no ${kind} transaction of this sender matches ${attributeType}`,
        },
      ],
    };
  }
  return {
    transaction_id: transactionId,
    correlation_id: input.correlationId,
    txnstatus_response: { txn_type: answerTxnType(input.registry, kind), txn_status: txnStatus },
  };
}
