import type { AppContext } from '../context.ts';
import { fetchReadableColumns, runQueryDefinition } from '../services/query-service.ts';
import type { ApiCaller } from '../services/token-service.ts';
import type { DciMapping, DciRegistry } from './dci-mapping.ts';
import { buildRecord, readRecordValues, type RecordValues } from './shape-records.ts';
import { buildSearchPlan, type Rejection, type SearchPlan } from './translate-search.ts';

type Json = Record<string, unknown>;

export interface SearchItemResult {
  reference_id: string;
  timestamp: string;
  status: 'succ' | 'rjct';
  status_reason_code?: string;
  status_reason_message?: string;
  data?: Json;
  pagination?: { page_size: number; page_number: number; total_count: number };
  locale: string;
}

export interface RecordsPage {
  records: Json[];
  total: number;
  plan: SearchPlan;
}

const RECORD_TYPES = {
  person: 'spdci-extensions-dci:Person',
  member: 'spdci-extensions-social:Member',
  group: 'spdci-extensions-social:Group',
} as const;
const REG_TYPES: Record<DciRegistry, string> = {
  social: 'ns:org:RegistryType:Social',
  crvs: 'ns:org:RegistryType:Civil',
};

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const isRejection = <T extends object>(value: T | Rejection): value is Rejection => 'rejected' in value;

/**
 * The records a criteria object matches, as the caller may see them: the plan keeps only
 * granted attributes and refuses conditions or sorts on others, and the query engine checks
 * the grants again when it runs the plan.
 */
export async function fetchDciRecords(
  ctx: AppContext,
  caller: ApiCaller,
  input: { mapping: DciMapping; registry: DciRegistry; criteria: unknown; target: string },
): Promise<RecordsPage | Rejection> {
  const readable = await fetchReadableColumns(ctx, caller);
  const today = ctx.clock.now().toISOString().slice(0, 10);
  const planInput = { mapping: input.mapping, registry: input.registry, readable, today };
  let plan = buildSearchPlan(input.criteria, planInput);
  if (isRejection(plan)) return plan;
  if (
    plan.collection.record === 'group' &&
    isObject(input.criteria) &&
    input.criteria.query_type === 'idtype-value'
  ) {
    const criteria = await findGroupsOfMember(ctx, caller, {
      ...input,
      criteria: input.criteria,
      plan,
      planInput,
    });
    if (isRejection(criteria)) return criteria;
    plan = buildSearchPlan(criteria, planInput);
    if (isRejection(plan)) return plan;
  }
  const result = await runQueryDefinition(ctx, caller, plan.definition, {
    page: plan.page,
    pageSize: plan.pageSize,
    target: input.target,
  });
  const rows = result.rows.map((row) => readRecordValues(row, plan.attributes));
  const members = await fetchGroupMembers(ctx, caller, { ...input, readable, today }, plan, rows);
  const records = rows.map((values) => {
    const key = plan.collection.group_key === undefined ? undefined : values.get(findGroupAttribute(plan));
    return buildRecord(
      plan.collection,
      values,
      key === undefined ? undefined : (members?.get(String(key)) ?? []),
    );
  });
  return { records, total: result.total_count, plan };
}

/**
 * A household asked for by a person's UIN is the household that person belongs to, whoever
 * heads it: the person is looked up among the members first, then the groups by their keys.
 */
async function findGroupsOfMember(
  ctx: AppContext,
  caller: ApiCaller,
  input: {
    criteria: Json;
    plan: SearchPlan;
    planInput: Parameters<typeof buildSearchPlan>[1];
    target: string;
  },
): Promise<Json | Rejection> {
  const groupAttribute = findGroupAttribute(input.plan);
  const members = input.plan.collection.members;
  if (groupAttribute === '' || members === undefined) return input.criteria;
  const memberPlan = buildSearchPlan(
    { ...input.criteria, response_entity: members, pagination: { page_size: 1000 } },
    input.planInput,
  );
  if (isRejection(memberPlan)) return memberPlan;
  const found = await runQueryDefinition(ctx, caller, memberPlan.definition, {
    page: 1,
    pageSize: 1000,
    target: input.target,
  });
  const keys = [
    ...new Set(
      found.rows
        .map((row) => readRecordValues(row, memberPlan.attributes).get(groupAttribute))
        .filter((k) => k !== undefined),
    ),
  ];
  // No household: a condition nothing matches keeps the answer an empty page of the same shape.
  const values = keys.length > 0 ? keys : [''];
  return {
    ...input.criteria,
    query_type: 'predicate',
    query: [{ expression1: { attribute_name: groupAttribute, operator: 'in', attribute_value: values } }],
  };
}

function findGroupAttribute(plan: SearchPlan): string {
  for (const [name, column] of plan.attributes) if (column === plan.collection.group_key) return name;
  return '';
}

/** A group's member_list: one more search, on the members collection, by the groups' keys. */
async function fetchGroupMembers(
  ctx: AppContext,
  caller: ApiCaller,
  input: {
    mapping: DciMapping;
    registry: DciRegistry;
    target: string;
    readable: Map<string, string>;
    today: string;
  },
  plan: SearchPlan,
  rows: RecordValues[],
): Promise<Map<string, Json[]> | null> {
  const membersName = plan.collection.members;
  const groupAttribute = findGroupAttribute(plan);
  if (membersName === undefined || groupAttribute === '' || rows.length === 0) return null;
  const keys = [...new Set(rows.map((r) => r.get(groupAttribute)).filter((k) => k !== undefined))];
  if (keys.length === 0) return null;
  const memberPlan = buildSearchPlan(
    {
      query_type: 'predicate',
      response_entity: membersName,
      query: [{ expression1: { attribute_name: groupAttribute, operator: 'in', attribute_value: keys } }],
      pagination: { page_size: 1000, page_number: 1 },
    },
    { mapping: input.mapping, registry: input.registry, readable: input.readable, today: input.today },
  );
  if (isRejection(memberPlan)) return null;
  const result = await runQueryDefinition(ctx, caller, memberPlan.definition, {
    page: 1,
    pageSize: 1000,
    target: input.target,
  });
  const byGroup = new Map<string, Json[]>();
  for (const row of result.rows) {
    const values = readRecordValues(row, memberPlan.attributes);
    const key = String(values.get(groupAttribute));
    byGroup.set(key, [...(byGroup.get(key) ?? []), buildRecord(memberPlan.collection, values)]);
  }
  return byGroup;
}

/** CRVS reg_records is an object in registry_core_api (RegistryRecord): the records are its JSON-LD @graph. */
export function buildRegRecords(registry: DciRegistry, records: Json[]): Json | Json[] {
  if (registry === 'social') return records;
  return {
    '@context': 'https://schema.spdci.org/extensions/dci/v1/Person.jsonld',
    '@type': 'Person',
    '@container': '@set',
    '@graph': records,
  };
}

/** Answers every item of a search_request; a bad item is rejected with its reason, the others still answered. */
export async function runSearchRequest(
  ctx: AppContext,
  caller: ApiCaller,
  input: { mapping: DciMapping; registry: DciRegistry; message: Json; target: string; correlationId: string },
): Promise<{ transaction_id: string; correlation_id: string; search_response: SearchItemResult[] }> {
  const items = Array.isArray(input.message.search_request) ? input.message.search_request : [];
  const seen = new Set<string>();
  const search_response: SearchItemResult[] = [];
  for (const item of items as unknown[]) {
    const timestamp = ctx.clock.now().toISOString();
    const referenceId =
      isObject(item) && (typeof item.reference_id === 'string' || typeof item.reference_id === 'number')
        ? String(item.reference_id)
        : '';
    const base = { reference_id: referenceId, timestamp, locale: 'eng' };
    const rejectItem = (code: string, message: string) =>
      search_response.push({
        ...base,
        status: 'rjct',
        status_reason_code: code,
        status_reason_message: message.slice(0, 999),
      });
    if (
      !isObject(item) ||
      (item.reference_id !== undefined && referenceId === '' && item.reference_id !== '')
    ) {
      rejectItem('rjct.reference_id.invalid', 'reference_id: must be a string');
      continue;
    }
    if (referenceId !== '' && seen.has(referenceId)) {
      rejectItem(
        'rjct.reference_id.duplicate',
        `reference_id ${referenceId} repeats an earlier item of this message`,
      );
      continue;
    }
    seen.add(referenceId);
    if (
      item.timestamp !== undefined &&
      (typeof item.timestamp !== 'string' || Number.isNaN(Date.parse(item.timestamp)))
    ) {
      rejectItem('rjct.timestamp.invalid', 'timestamp: must be an ISO 8601 date-time');
      continue;
    }
    const found = await fetchDciRecords(ctx, caller, { ...input, criteria: item.search_criteria });
    if ('rejected' in found) {
      rejectItem(found.rejected, found.message);
      continue;
    }
    search_response.push({
      ...base,
      status: 'succ',
      data: {
        version: '1.0.0',
        reg_type: REG_TYPES[input.registry],
        reg_record_type: RECORD_TYPES[found.plan.collection.record],
        reg_records: buildRegRecords(input.registry, found.records),
      },
      pagination: { page_size: found.plan.pageSize, page_number: found.plan.page, total_count: found.total },
    });
  }
  const transactionId = input.message.transaction_id;
  return {
    transaction_id:
      typeof transactionId === 'string' || typeof transactionId === 'number' ? String(transactionId) : '',
    correlation_id: input.correlationId,
    search_response,
  };
}

export { RECORD_TYPES, REG_TYPES };
