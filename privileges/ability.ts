import { createMongoAbility, type MongoAbility, type RawRuleOf } from '@casl/ability';

/** Subject = warehouse table name, field = column name; reading is the only action. */
export type TableAbility = MongoAbility<['read', string]>;

export interface GrantedColumn {
  table: string;
  /** null: the whole table, including columns added later. */
  column: string | null;
}

/**
 * One rule per table: a whole-table grant (or an own table) wins over column grants on the
 * same table, so a table never carries both a field-less and a field-restricted rule.
 */
export function buildAbility(grants: GrantedColumn[], ownTables: string[]): TableAbility {
  const access = new Map<string, Set<string> | 'all'>();
  for (const table of ownTables) access.set(table, 'all');
  for (const grant of grants) {
    const current = access.get(grant.table);
    if (current === 'all') continue;
    if (grant.column === null) access.set(grant.table, 'all');
    else access.set(grant.table, (current ?? new Set<string>()).add(grant.column));
  }
  const rules: Array<RawRuleOf<TableAbility>> = [...access].map(([table, columns]) =>
    columns === 'all'
      ? { action: 'read', subject: table }
      : { action: 'read', subject: table, fields: [...columns] },
  );
  return createMongoAbility<TableAbility>(rules);
}
