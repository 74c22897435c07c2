import { createHash, randomUUID } from 'node:crypto';
import type { AppContext } from '../context.ts';
import { fetchClient } from '../services/client-service.ts';
import type { ApiCaller } from '../services/token-service.ts';
import { isoNow } from '../../warehouse/core/clock.ts';
import type { DciRegistry } from './dci-mapping.ts';
import type { DciState } from './dci-state.ts';
import { buildRegRecords, fetchDciRecords, RECORD_TYPES, REG_TYPES } from './run-dci-search.ts';
import { buildSignedEnvelope, sendCallback } from './send-callback.ts';
import { MAX_PAGE_SIZE, MAX_RECORDS } from './translate-search.ts';
import { inWriteTransaction } from '../../warehouse/write-transaction.ts';

type Json = Record<string, unknown>;
export type EventKind = 'birth' | 'death' | 'change';

interface SubscriptionRow {
  code: string;
  registry: DciRegistry;
  client_id: string;
  event_type: string;
  filter: string;
  notify_record_type: string;
  sender_uri: string | null;
  status: 'subscribe' | 'unsubscribe';
  created_at: string;
}

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Vital events and data changes, however a sender spells them (live_birth, BIRTH_REGISTERED, spdci-common:RegistryEventType:LiveBirth). */
export function readEventKind(eventType: unknown): EventKind | null {
  if (typeof eventType !== 'string') return null;
  const word = (eventType.split(':').pop() ?? '').toLowerCase().replace(/[^a-z]/g, '');
  if (['birth', 'livebirth', 'birthregistered'].includes(word)) return 'birth';
  if (['death', 'deathregistered'].includes(word)) return 'death';
  if (['datamodification', 'update', 'change', 'modification', 'register', 'updated'].includes(word))
    return 'change';
  return null;
}

const hashRecord = (record: Json) => createHash('sha256').update(JSON.stringify(record)).digest('hex');

function readRecordKey(record: Json): string | null {
  const id =
    record.identifier ??
    (Array.isArray(record.member_identifier)
      ? (record.member_identifier[0] as Json | undefined)?.identifier_value
      : undefined);
  return typeof id === 'string' ? id : null;
}

function isEventRecord(kind: EventKind, record: Json): boolean {
  if (kind === 'change') return true;
  const ids = Array.isArray(record.identifiers) ? (record.identifiers as Json[]) : [];
  return ids.some((i) => i.identifier_type === (kind === 'birth' ? 'BRN' : 'DRN'));
}

/** Every record the subscription's filter matches now, as its subscriber may see it, keyed by person. */
async function fetchSubscribedRecords(
  ctx: AppContext,
  state: DciState,
  caller: ApiCaller,
  sub: { registry: DciRegistry; kind: EventKind; filter: Json },
): Promise<Map<string, Json> | { rejected: string; message: string }> {
  const records = new Map<string, Json>();
  for (let page = 1; (page - 1) * MAX_PAGE_SIZE < MAX_RECORDS; page++) {
    const found = await fetchDciRecords(ctx, caller, {
      mapping: state.mapping,
      registry: sub.registry,
      criteria: { ...sub.filter, pagination: { page_size: MAX_PAGE_SIZE, page_number: page } },
      target: `DCI ${sub.registry} subscription`,
    });
    if ('rejected' in found) return found;
    for (const record of found.records) {
      const key = readRecordKey(record);
      if (key !== null && isEventRecord(sub.kind, record)) records.set(key, record);
    }
    if (page * MAX_PAGE_SIZE >= found.total) break;
  }
  return records;
}

async function saveNotified(
  ctx: AppContext,
  code: string,
  records: Map<string, Json>,
  known: Map<string, string>,
): Promise<void> {
  await inWriteTransaction(ctx.knex, async (trx) => {
    for (const [key, record] of records) {
      const hash = hashRecord(record);
      if (known.get(key) === hash) continue;
      if (known.has(key))
        await trx('hub_dci_notified')
          .where({ subscription_code: code, record_key: key })
          .update({ record_hash: hash });
      else
        await trx('hub_dci_notified').insert({
          subscription_code: code,
          record_key: key.slice(0, 200),
          record_hash: hash,
        });
    }
  });
}

/** One subscribe_request item: checked, saved, and its current records remembered so only later changes are notified. */
export async function subscribeItem(
  ctx: AppContext,
  state: DciState,
  caller: ApiCaller,
  input: { registry: DciRegistry; item: unknown; senderUri: string | null },
): Promise<Json> {
  const timestamp = ctx.clock.now().toISOString();
  const item = isObject(input.item) ? input.item : {};
  const referenceId =
    typeof item.reference_id === 'string' || typeof item.reference_id === 'number'
      ? String(item.reference_id)
      : '';
  const rejectItem = (code: string, message: string): Json => ({
    reference_id: referenceId,
    timestamp,
    status: 'rjct',
    status_reason_code: code,
    status_reason_message: message.slice(0, 999),
  });
  if (!isObject(input.item))
    return rejectItem('rjct.reference_id.invalid', 'each subscribe_request item must be an object');
  const criteria = item.subscribe_criteria;
  if (!isObject(criteria)) return rejectItem('rjct.notify_details.invalid', 'subscribe_criteria: required');
  const kind = readEventKind(criteria.reg_event_type);
  if (kind === null)
    return rejectItem(
      'rjct.notify_types.invalid',
      `reg_event_type: ${JSON.stringify(criteria.reg_event_type ?? null)} is not a birth, death or data-change event`,
    );
  if (input.senderUri === null)
    return rejectItem(
      'rjct.notify_details.invalid',
      'header.sender_uri: the URL that receives notify messages is required',
    );
  const filter: Json = {
    query_type: criteria.filter_type ?? 'predicate',
    query: criteria.filter,
    notify_record_type: criteria.notify_record_type,
  };
  const eventType = String(criteria.reg_event_type).slice(0, 200);
  const filterText = JSON.stringify(criteria.filter ?? null);
  const existing = await ctx
    .knex<SubscriptionRow>('hub_dci_subscriptions')
    .where({
      registry: input.registry,
      client_id: caller.clientId,
      event_type: eventType,
      status: 'subscribe',
    })
    .select('code', 'filter');
  if (existing.some((row) => JSON.stringify((JSON.parse(row.filter) as Json).query ?? null) === filterText)) {
    return rejectItem(
      'rjct.event.already_subscribed',
      'this sender already subscribes to this event with this filter',
    );
  }
  const records = await fetchSubscribedRecords(ctx, state, caller, {
    registry: input.registry,
    kind,
    filter,
  });
  if ('rejected' in records) return rejectItem('rjct.notify_details.invalid', `filter: ${records.message}`);
  const code = randomUUID();
  await ctx.knex('hub_dci_subscriptions').insert({
    code,
    registry: input.registry,
    client_id: caller.clientId,
    event_type: eventType,
    filter: JSON.stringify(filter),
    notify_record_type: (typeof criteria.notify_record_type === 'string'
      ? criteria.notify_record_type
      : RECORD_TYPES.person
    ).slice(0, 200),
    sender_uri: input.senderUri,
    status: 'subscribe',
    created_at: isoNow(ctx.clock),
  });
  await saveNotified(ctx, code, records, new Map());
  const subscribeCriteria = {
    reg_event_type: eventType,
    filter_type: filter.query_type,
    filter: criteria.filter,
    notify_record_type: criteria.notify_record_type ?? RECORD_TYPES.person,
  };
  return {
    reference_id: referenceId,
    timestamp,
    status: 'succ',
    subscriptions: [
      {
        version: '1.0.0',
        code,
        subscription_code: code,
        status: 'subscribe',
        timestamp,
        ...subscribeCriteria,
        subscribe_criteria: subscribeCriteria,
      },
    ],
  };
}

/** Ends the caller's own subscriptions; codes of other senders are unknown to it. */
export async function unsubscribe(
  ctx: AppContext,
  caller: ApiCaller,
  input: { registry: DciRegistry; codes: string[] },
): Promise<Json> {
  const statuses: Json[] = [];
  const problems: Array<{ code: string; message: string }> = [];
  for (const code of input.codes) {
    const row = await ctx
      .knex<SubscriptionRow>('hub_dci_subscriptions')
      .where({ code, registry: input.registry, client_id: caller.clientId })
      .first();
    if (row === undefined) {
      problems.push({
        code: 'rjct.subscription_code.invalid',
        message: `no subscription ${code} of this sender`,
      });
      continue;
    }
    if (row.status === 'unsubscribe') {
      problems.push({
        code: 'rjct.event.already_unsubscribed',
        message: `subscription ${code} is already ended`,
      });
      statuses.push({ code, status: 'unsubscribe' });
      continue;
    }
    await inWriteTransaction(ctx.knex, async (trx) => {
      await trx('hub_dci_subscriptions').where({ code }).update({ status: 'unsubscribe' });
      await trx('hub_dci_notified').where({ subscription_code: code }).delete();
    });
    statuses.push({ code, status: 'unsubscribe' });
  }
  const first = problems[0];
  return {
    timestamp: ctx.clock.now().toISOString(),
    status: first === undefined ? 'succ' : 'rjct',
    ...(first === undefined
      ? {}
      : {
          status_reason_code: first.code,
          status_reason_message: problems
            .map((p) => p.message)
            .join('; ')
            .slice(0, 999),
        }),
    subscription_status: statuses,
  };
}

/**
 * After a connector run, each subscription whose records read the loaded table is checked: a
 * birth or death record new to it, or a changed record of a person it follows, is sent to its
 * sender_uri in one signed notify message. What was sent is remembered only once the
 * subscriber accepted it, so a failed delivery is retried after the next run.
 */
export async function notifySubscribers(ctx: AppContext, state: DciState, table: string): Promise<number> {
  const rows = await ctx
    .knex<SubscriptionRow>('hub_dci_subscriptions')
    .where({ status: 'subscribe' })
    .select('*');
  let sent = 0;
  for (const sub of rows) {
    try {
      sent += await notifySubscription(ctx, state, sub, table);
    } catch (err) {
      ctx.logger.warn({ err, subscription: sub.code }, 'DCI notify failed; retried after the next run');
    }
  }
  return sent;
}

async function notifySubscription(
  ctx: AppContext,
  state: DciState,
  sub: SubscriptionRow,
  table: string,
): Promise<number> {
  const kind = readEventKind(sub.event_type);
  const collections = [...(state.mapping.registries[sub.registry]?.collections.values() ?? [])];
  if (kind === null || sub.sender_uri === null || !collections.some((c) => c.tables.includes(table)))
    return 0;
  const client = await fetchClient(ctx, sub.client_id);
  if (client === null || client.status !== 'active') return 0;
  const caller: ApiCaller = {
    clientId: client.client_id,
    entity: client.entity,
    limits: { perMinute: client.rate_per_minute, perDay: client.rate_per_day },
  };
  const records = await fetchSubscribedRecords(ctx, state, caller, {
    registry: sub.registry,
    kind,
    filter: JSON.parse(sub.filter) as Json,
  });
  if ('rejected' in records) return 0;
  const known = new Map(
    (
      await ctx
        .knex('hub_dci_notified')
        .where({ subscription_code: sub.code })
        .select<Array<{ record_key: string; record_hash: string }>>('record_key', 'record_hash')
    ).map((r) => [r.record_key, r.record_hash]),
  );
  const fresh = [...records].filter(([key, record]) =>
    kind === 'change' ? known.get(key) !== hashRecord(record) : !known.has(key),
  );
  if (fresh.length === 0) return 0;
  const timestamp = ctx.clock.now().toISOString();
  const message: Json = {
    transaction_id: sub.code,
    notify_event: fresh.map(([key, record]) => ({
      reference_id: `${sub.code}:${key}`.slice(0, 99),
      timestamp,
      data: {
        version: '1.0.0',
        reg_type: REG_TYPES[sub.registry],
        reg_record_type: sub.notify_record_type,
        reg_records: buildRegRecords(sub.registry, [record]),
      },
      locale: 'eng',
    })),
  };
  const envelope = buildSignedEnvelope({
    key: await state.fetchKey(),
    clock: ctx.clock,
    action: 'notify',
    receiverId: sub.client_id,
    message,
    totalCount: fresh.length,
  });
  await sendCallback(sub.sender_uri, envelope);
  await saveNotified(ctx, sub.code, new Map(fresh), known);
  return fresh.length;
}
