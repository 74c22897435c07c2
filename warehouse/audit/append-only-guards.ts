import type { DialectName } from '../db.ts';

/** The tables of the audit log: the chain and its "who read this person" rows. */
export const AUDIT_TABLES = ['hub_audit', 'hub_audit_subjects'] as const;

const APPEND_ONLY = (table: string) => `${table} is append-only: rows may not be updated or deleted`;

/**
 * The statements that make the database itself refuse UPDATE, DELETE (and TRUNCATE where the
 * database has a hook for it) on the audit tables, so a stray statement or a compromised
 * query path cannot rewrite history. They stop anyone without DDL rights; someone who may drop
 * triggers is caught by the signed checkpoints instead (see README.md).
 */
export function buildAppendOnlyGuards(dialect: DialectName): string[] {
  switch (dialect) {
    case 'sqlite':
      return AUDIT_TABLES.flatMap((table) =>
        (['UPDATE', 'DELETE'] as const).map(
          (op) =>
            `CREATE TRIGGER IF NOT EXISTS "${table}_no_${op.toLowerCase()}" BEFORE ${op} ON "${table}" ` +
            `BEGIN SELECT RAISE(ABORT, '${APPEND_ONLY(table)}'); END`,
        ),
      );
    case 'postgres':
      return [
        `CREATE OR REPLACE FUNCTION hub_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only: rows may not be updated or deleted', TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END
$$`,
        ...AUDIT_TABLES.flatMap((table) => [
          `DROP TRIGGER IF EXISTS "${table}_no_change" ON "${table}"`,
          `CREATE TRIGGER "${table}_no_change" BEFORE UPDATE OR DELETE ON "${table}" FOR EACH ROW EXECUTE FUNCTION hub_audit_append_only()`,
          `DROP TRIGGER IF EXISTS "${table}_no_truncate" ON "${table}"`,
          `CREATE TRIGGER "${table}_no_truncate" BEFORE TRUNCATE ON "${table}" FOR EACH STATEMENT EXECUTE FUNCTION hub_audit_append_only()`,
        ]),
      ];
    case 'mssql':
      // SQL Server fires no trigger on TRUNCATE TABLE; it needs ALTER permission on the table, which the hub's role should not hold.
      return AUDIT_TABLES.map(
        (table) =>
          `CREATE OR ALTER TRIGGER [${table}_no_change] ON [${table}] INSTEAD OF UPDATE, DELETE AS ` +
          `BEGIN SET NOCOUNT ON; THROW 51000, '${APPEND_ONLY(table)}', 1; END`,
      );
  }
}

/**
 * Privileges taken away on PostgreSQL besides the triggers: from PUBLIC, and from the hub's own
 * role, which owns the tables. An owner may grant them back, but then it has to mean to.
 */
export function buildAppendOnlyRevokes(dialect: DialectName): string[] {
  if (dialect !== 'postgres') return [];
  return AUDIT_TABLES.map(
    (table) => `REVOKE UPDATE, DELETE, TRUNCATE ON "${table}" FROM PUBLIC, CURRENT_USER`,
  );
}

/**
 * The statements that take the guards away (triggers dropped, PostgreSQL privileges granted
 * back). Only `hub copy --force` uses them, to replace a whole hub, audit log included, at the
 * operator's explicit request; it puts the guards back in the same transaction.
 */
export function buildDropAppendOnlyGuards(dialect: DialectName): string[] {
  return AUDIT_TABLES.flatMap((table) =>
    dialect === 'sqlite'
      ? [`DROP TRIGGER IF EXISTS "${table}_no_update"`, `DROP TRIGGER IF EXISTS "${table}_no_delete"`]
      : [
          `DROP TRIGGER IF EXISTS "${table}_no_change" ON "${table}"`,
          `DROP TRIGGER IF EXISTS "${table}_no_truncate" ON "${table}"`,
          `GRANT UPDATE, DELETE, TRUNCATE ON "${table}" TO CURRENT_USER`,
        ],
  );
}
