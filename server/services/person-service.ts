import { attachAuditNote } from '../../warehouse/audit/audit-note.ts';
import { fetchAbility } from '../../privileges/ability-cache.ts';
import { invalidRequest, notFound } from '../../warehouse/core/errors.ts';
import { explainInvalidNationalId } from '../../warehouse/core/national-id.ts';
import { normalizeValue } from '../../warehouse/core/normalize-row.ts';
import type { AppContext } from '../context.ts';
import { fetchPersonLookupPlan, roundUpIdCount, type PersonLookupPlan } from './person-lookup-plan.ts';
import { readRegistryRows } from './registry-reads.ts';
import type { ApiCaller } from './token-service.ts';

export interface PersonRecord {
  national_id: string;
  tables: Record<string, Array<Record<string, unknown>>>;
}

/** One person of a batch: the single lookup's answer, with its status beside it. */
export type BatchResult =
  | { national_id: string; status: 200; tables: PersonRecord['tables'] }
  | { national_id: string; status: 404; error: { code: 'not_found'; message: string } };

export interface BatchAnswer {
  results: BatchResult[];
}

/** How many national IDs one batch call may ask for. */
export const MAX_BATCH_IDS = 100;

/** A person as far as the caller may see them: null when no table the caller may read holds them. */
interface FoundPerson {
  tables: PersonRecord['tables'];
  rows: number;
  /** "table.column" of every column returned with at least one row. */
  columns: string[];
}

type Row = Record<string, unknown>;

const describeUnknown = (nationalId: string) => `no person with national ID ${nationalId}`;

function assertNationalId(ctx: AppContext, nationalId: string, field: string): void {
  const problem = explainInvalidNationalId(nationalId, ctx.nationalIdRule);
  if (problem !== null) throw invalidRequest(`${field}: ${problem}`);
}

/** The IDs repeated to a statement's size (see roundUpIdCount). */
function padIds(ids: readonly string[]): string[] {
  const padded = [...ids];
  while (padded.length < roundUpIdCount(ids.length)) padded.push(ids[ids.length - 1]!);
  return padded;
}

/** Which planned tables hold each person: one statement probing every planned table's national-ID index. */
async function fetchHoldings(
  ctx: AppContext,
  plan: PersonLookupPlan,
  ids: readonly string[],
): Promise<Map<string, Set<string>>> {
  const holdings = new Map<string, Set<string>>();
  if (plan.tables.length === 0) return holdings;
  for (let start = 0; start < ids.length; start += plan.holdingIdsPerStatement) {
    const padded = padIds(ids.slice(start, start + plan.holdingIdsPerStatement));
    const rows = await readRegistryRows<{ national_id: string; table_index: number | string }>(
      ctx,
      plan.holdingSql(padded.length),
      plan.tables.flatMap(() => padded),
    );
    for (const { national_id, table_index } of rows) {
      const id = String(national_id);
      let tables = holdings.get(id);
      if (tables === undefined) holdings.set(id, (tables = new Set()));
      tables.add(plan.tables[Number(table_index)]!.table.name);
    }
  }
  return holdings;
}

/**
 * Each person's readable rows, table by table: every table is read once for all the persons it
 * holds, with only the columns the ability allows (nothing is fetched and then stripped).
 */
async function fetchPersons(
  ctx: AppContext,
  caller: ApiCaller,
  ids: readonly string[],
): Promise<Map<string, FoundPerson>> {
  const ability = await fetchAbility(ctx, ctx.abilities, caller.entity);
  const plan = fetchPersonLookupPlan(ctx.reader, ability, await ctx.catalog.fetch());
  const holdings = await fetchHoldings(ctx, plan, ids);
  const found = new Map<string, FoundPerson>();
  for (const id of ids) {
    if (!holdings.has(id)) continue;
    const tables = Object.fromEntries(plan.tables.map((t) => [t.table.name, [] as Row[]]));
    found.set(id, { tables, rows: 0, columns: [] });
  }
  for (const planned of plan.tables) {
    const holders = ids.filter((id) => holdings.get(id)?.has(planned.table.name) === true);
    if (holders.length === 0) continue;
    const padded = padIds(holders);
    const rows = await readRegistryRows<Row>(ctx, planned.sql(padded.length), padded);
    const { columns, types } = planned;
    for (const row of rows) {
      const person = found.get(String(row[planned.table.nationalIdColumn]));
      if (person === undefined) continue;
      const out: Row = {};
      for (let i = 0; i < columns.length; i++) out[columns[i]!] = normalizeValue(types[i], row[columns[i]!]);
      person.tables[planned.table.name]!.push(out);
      person.rows++;
    }
    for (const id of holders) {
      const person = found.get(id)!;
      if (person.tables[planned.table.name]!.length > 0)
        person.columns.push(...columns.map((c) => `${planned.table.name}.${c}`));
    }
  }
  return found;
}

/**
 * Everything the caller's entity may read about one person: each readable table with only its
 * readable columns. The person is found by one statement probing the national-ID index of each
 * table the entity may read, and no other: a person held only in other tables gets the same
 * 404, from the same reads, as an ID no registry holds, so the lookup tells nobody who exists
 * elsewhere. The answer carries an audit note (the person's national ID and
 * the columns returned) that the API writes with its outcome before the answer leaves.
 */
export async function fetchPerson(
  ctx: AppContext,
  caller: ApiCaller,
  nationalId: string,
): Promise<PersonRecord> {
  assertNationalId(ctx, nationalId, 'national_id');
  const person = (await fetchPersons(ctx, caller, [nationalId])).get(nationalId);
  if (person === undefined) throw notFound(describeUnknown(nationalId));
  return attachAuditNote(
    { national_id: nationalId, tables: person.tables },
    {
      details: {
        params: { national_id: nationalId },
        columns: person.columns,
        tables: Object.keys(person.tables),
        rows: person.rows,
      },
      subjects: person.columns.length > 0 ? [nationalId] : [],
    },
  );
}

/**
 * Up to MAX_BATCH_IDS persons in one call, each answered as its single lookup would be (the same
 * tables and columns, or the same not_found for a person the caller may not see), in the order
 * asked. Every ID must be well formed and appear once: a bad or repeated ID refuses the whole
 * call with 400, so that results line up with the request. The audit note lists every person
 * whose data the answer carries.
 */
export async function fetchPersonBatch(
  ctx: AppContext,
  caller: ApiCaller,
  nationalIds: readonly string[],
): Promise<BatchAnswer> {
  if (nationalIds.length === 0 || nationalIds.length > MAX_BATCH_IDS)
    throw invalidRequest(`national_ids: between 1 and ${MAX_BATCH_IDS} IDs, got ${nationalIds.length}`);
  const seen = new Set<string>();
  for (const [i, id] of nationalIds.entries()) {
    assertNationalId(ctx, id, `national_ids.${i}`);
    if (seen.has(id)) throw invalidRequest(`national_ids.${i}: ${id} is asked for more than once`);
    seen.add(id);
  }
  const found = await fetchPersons(ctx, caller, nationalIds);
  const results = nationalIds.map((id): BatchResult => {
    const person = found.get(id);
    return person === undefined
      ? { national_id: id, status: 404, error: { code: 'not_found', message: describeUnknown(id) } }
      : { national_id: id, status: 200, tables: person.tables };
  });
  const returned = [...found.values()];
  return attachAuditNote(
    { results },
    {
      details: {
        params: { national_ids: nationalIds },
        found: found.size,
        columns: [...new Set(returned.flatMap((p) => p.columns))],
        rows: returned.reduce((sum, p) => sum + p.rows, 0),
      },
      subjects: [...found].filter(([, p]) => p.columns.length > 0).map(([id]) => id),
    },
  );
}
