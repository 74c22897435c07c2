import { attachAuditNote } from '../../warehouse/audit/audit-note.ts';
import { fetchAbility } from '../../privileges/ability-cache.ts';
import { permittedColumns } from '../../privileges/permitted-columns.ts';
import { invalidRequest, notFound } from '../../warehouse/core/errors.ts';
import { explainInvalidNationalId } from '../../warehouse/core/national-id.ts';
import { normalizeValue } from '../../warehouse/core/normalize-row.ts';
import type { AppContext } from '../context.ts';
import type { ApiCaller } from './token-service.ts';

export interface PersonRecord {
  national_id: string;
  tables: Record<string, Array<Record<string, unknown>>>;
}

/**
 * Everything the caller's entity may read about one person: each granted table with only its
 * granted columns, selected as such (nothing is fetched and then stripped). The answer carries
 * an audit note (the person's national ID and the columns returned) that the API writes with
 * its outcome before the answer leaves.
 */
export async function fetchPerson(ctx: AppContext, caller: ApiCaller, nationalId: string): Promise<PersonRecord> {
  const problem = explainInvalidNationalId(nationalId, ctx.nationalIdRule);
  if (problem !== null) throw invalidRequest(`national_id: ${problem}`);
  const ability = await fetchAbility(ctx, ctx.abilities, caller.entity);
  const catalog = await ctx.catalog.fetch();
  const known = await ctx.knex('hub_persons').where({ national_id: nationalId }).first<{ national_id: string } | undefined>('national_id');
  if (known === undefined) throw notFound(`no person with national ID ${nationalId}`);

  const tables: PersonRecord['tables'] = {};
  const returned: string[] = [];
  for (const table of catalog) {
    const columns = permittedColumns(ability, table);
    if (columns.length === 0) continue;
    const types = new Map(table.columns.map((c) => [c.name, c.type]));
    const rows = await ctx.knex(table.name).where(table.nationalIdColumn, nationalId).select<Array<Record<string, unknown>>>(columns);
    tables[table.name] = rows.map((row) => Object.fromEntries(columns.map((c) => [c, normalizeValue(types.get(c), row[c])])));
    if (rows.length > 0) returned.push(...columns.map((c) => `${table.name}.${c}`));
  }
  return attachAuditNote(
    { national_id: nationalId, tables },
    {
      details: { params: { national_id: nationalId }, columns: returned, tables: Object.keys(tables), rows: Object.values(tables).flat().length },
      subjects: returned.length > 0 ? [nationalId] : [],
    },
  );
}
