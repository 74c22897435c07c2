import { attachAuditNote } from '../../warehouse/audit/audit-note.ts';
import { fetchAbility } from '../../privileges/ability-cache.ts';
import { permittedPersonColumns } from '../../privileges/permitted-columns.ts';
import { invalidRequest, notFound } from '../../warehouse/core/errors.ts';
import { explainInvalidNationalId } from '../../warehouse/core/national-id.ts';
import { normalizeValue } from '../../warehouse/core/normalize-row.ts';
import { pickRegistryReader, type AppContext } from '../context.ts';
import type { ApiCaller } from './token-service.ts';

export interface PersonRecord {
  national_id: string;
  tables: Record<string, Array<Record<string, unknown>>>;
}

/**
 * Everything the caller's entity may read about one person: each readable table with only its
 * readable columns, selected as such (nothing is fetched and then stripped). The person is
 * found through hub_person_tables, the star's centre, restricted to the tables the entity may
 * read: a person held only in other tables gets the same 404, from the same one indexed read,
 * as an ID no registry holds, so the lookup tells nobody who exists elsewhere. The answer
 * carries an audit note (the person's national ID and the columns returned) that the API
 * writes with its outcome before the answer leaves.
 */
export async function fetchPerson(
  ctx: AppContext,
  caller: ApiCaller,
  nationalId: string,
): Promise<PersonRecord> {
  const problem = explainInvalidNationalId(nationalId, ctx.nationalIdRule);
  if (problem !== null) throw invalidRequest(`national_id: ${problem}`);
  const ability = await fetchAbility(ctx, ctx.abilities, caller.entity);
  const catalog = await ctx.catalog.fetch();
  const db = pickRegistryReader(ctx);
  const readable = catalog
    .map((table) => ({ table, columns: permittedPersonColumns(ability, table) }))
    .filter((r) => r.columns.length > 0);
  const holding = new Set(
    await db('hub_person_tables')
      .where({ national_id: nationalId })
      .whereIn(
        'table_name',
        readable.map((r) => r.table.name),
      )
      .pluck<string[]>('table_name'),
  );
  if (holding.size === 0) throw notFound(`no person with national ID ${nationalId}`);

  const tables: PersonRecord['tables'] = {};
  const returned: string[] = [];
  for (const { table, columns } of readable) {
    if (!holding.has(table.name)) {
      tables[table.name] = [];
      continue;
    }
    const types = new Map(table.columns.map((c) => [c.name, c.type]));
    // Ordered by readable values only (the record key where readable, then every returned
    // column), so the order of a person's rows shows nothing of the columns left out.
    const order = [...new Set([...table.key.filter((k) => columns.includes(k)), ...columns])];
    const rows = await db(table.name)
      .where(table.nationalIdColumn, nationalId)
      .orderBy(order)
      .select<Array<Record<string, unknown>>>(columns);
    tables[table.name] = rows.map((row) =>
      Object.fromEntries(columns.map((c) => [c, normalizeValue(types.get(c), row[c])])),
    );
    if (rows.length > 0) returned.push(...columns.map((c) => `${table.name}.${c}`));
  }
  return attachAuditNote(
    { national_id: nationalId, tables },
    {
      details: {
        params: { national_id: nationalId },
        columns: returned,
        tables: Object.keys(tables),
        rows: Object.values(tables).flat().length,
      },
      subjects: returned.length > 0 ? [nationalId] : [],
    },
  );
}
