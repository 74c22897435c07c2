import type { Knex } from 'knex';
import { isoNow, type Clock } from '../core/clock.ts';
import { conflict } from '../core/errors.ts';
import type { PreparedReads } from '../prepared-reads.ts';
import { parseQueryDefinition, type QueryDefinition } from './query-definition.ts';

export interface SavedQueryRecord {
  definition: QueryDefinition;
  savedBy: string;
  savedAt: string;
}

interface QueryRow {
  name: string;
  entity: string;
  description: string;
  definition: string;
  saved_by: string;
  saved_at: string;
}

const QUERIES = 'hub_queries';

/**
 * Inserts a saved query or replaces the entity's own query of that name. Written as UPDATE then
 * INSERT so it runs on SQL Server too; a name held by another entity is a conflict, never an
 * overwrite of that entity's endpoint.
 */
export async function saveQueryRecord(
  executor: Knex | Knex.Transaction,
  def: QueryDefinition,
  savedBy: string,
  clock: Clock,
): Promise<void> {
  const values = {
    description: def.description,
    definition: JSON.stringify(def),
    saved_by: savedBy,
    saved_at: isoNow(clock),
  };
  const updated = await executor<QueryRow>(QUERIES)
    .where({ name: def.name, entity: def.entity })
    .update(values);
  if (updated > 0) return;
  const owner = await executor<QueryRow>(QUERIES).where({ name: def.name }).first('entity');
  if (owner !== undefined)
    throw conflict('query_name_taken', `a query named ${def.name} already belongs to ${owner.entity}`);
  await executor<QueryRow>(QUERIES).insert({ name: def.name, entity: def.entity, ...values });
}

/** The stored definition, parsed again so that a row edited by hand cannot bypass validation. */
export async function fetchQueryRecord(
  knex: Knex | Knex.Transaction,
  name: string,
): Promise<QueryDefinition | null> {
  const row = await knex<QueryRow>(QUERIES).where({ name }).first('definition');
  return row === undefined ? null : parseStoredDefinition(row.definition);
}

const DEFINITION_SQL = 'SELECT definition FROM hub_queries WHERE name = ?';

/**
 * fetchQueryRecord for every run of a saved query: the row is read at each run, so an edit or a
 * delete counts from the next one, as one prepared primary-key read (see PreparedReads).
 */
export async function fetchRunnableDefinition(
  reads: PreparedReads,
  name: string,
): Promise<QueryDefinition | null> {
  const row = await reads.first<{ definition: string }>(DEFINITION_SQL, [name]);
  return row === undefined ? null : parseStoredDefinition(row.definition);
}

/** More distinct definitions than a hub holds; past it the memo starts over rather than grow. */
const MAX_PARSED = 1_000;
const parsed = new Map<string, QueryDefinition>();

/**
 * A stored definition's text, validated: the same text always gives the same definition, so it
 * is validated once per process and then looked up by its text. It is frozen, since every run
 * of the query shares it.
 */
function parseStoredDefinition(text: string): QueryDefinition {
  let def = parsed.get(text);
  if (def === undefined) {
    def = deepFreeze(parseQueryDefinition(JSON.parse(text)));
    if (parsed.size >= MAX_PARSED) parsed.clear();
    parsed.set(text, def);
  }
  return def;
}

export async function fetchQueryRecords(
  knex: Knex | Knex.Transaction,
  entity?: string,
): Promise<SavedQueryRecord[]> {
  const query = knex<QueryRow>(QUERIES).select('definition', 'saved_by', 'saved_at').orderBy('name');
  if (entity !== undefined) query.where({ entity });
  const rows = await query;
  return rows.map((r) => ({
    definition: parseStoredDefinition(r.definition),
    savedBy: r.saved_by,
    savedAt: r.saved_at,
  }));
}

/** True when a query was deleted. */
export async function deleteQueryRecord(executor: Knex | Knex.Transaction, name: string): Promise<boolean> {
  return (await executor<QueryRow>(QUERIES).where({ name }).delete()) > 0;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const inner of Object.values(value)) deepFreeze(inner);
  }
  return value;
}
