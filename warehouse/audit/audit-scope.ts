import type { Knex } from 'knex';

/** An entity and the registry tables it owns: whose audit events a custodian or entity admin may read. */
export interface AuditScope {
  entity: string;
  tables: readonly string[];
}

/** Table names are `[a-z0-9_]`; `_` is LIKE's one-character wildcard and must match itself. */
const escapeLike = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/**
 * Keeps the events about the entity: those it acted in (its users, its clients, its connectors'
 * runs, grants made to it), the grants and revokes of its tables, and every event that names a
 * column of its tables as read (`"table.column"` in the details, as reads and query runs list
 * them). The last test is on the event's JSON text, so it also holds for a value a caller sent
 * that is written like one of the entity's columns.
 */
export function whereAboutEntity(
  query: Knex.QueryBuilder,
  scope: AuditScope,
  alias?: string,
): Knex.QueryBuilder {
  const column = (name: string) => (alias === undefined ? name : `${alias}.${name}`);
  return query.where((about) => {
    void about.where(column('entity'), scope.entity);
    if (scope.tables.length === 0) return;
    void about.orWhere(
      (granted) =>
        void granted
          .whereIn(column('action'), ['grant', 'revoke'])
          .whereIn(column('target'), [...scope.tables]),
    );
    for (const table of scope.tables)
      void about.orWhereRaw(`?? like ? escape '\\'`, [column('details'), `%"${escapeLike(table)}.%`]);
  });
}
