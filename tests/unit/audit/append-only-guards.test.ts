import assert from 'node:assert/strict';
import {
  AUDIT_TABLES,
  buildAppendOnlyGuards,
  buildAppendOnlyRevokes,
} from '../../../warehouse/audit/append-only-guards.ts';

// SQL Server cannot run here: its guards are checked as the SQL text migration 004 sends.
describe('append-only guards of the audit tables', () => {
  it('SQL Server: one INSTEAD OF UPDATE, DELETE trigger per audit table that throws and changes nothing', () => {
    const statements = buildAppendOnlyGuards('mssql');
    assert.deepEqual(statements, [
      "CREATE OR ALTER TRIGGER [hub_audit_no_change] ON [hub_audit] INSTEAD OF UPDATE, DELETE AS BEGIN SET NOCOUNT ON; THROW 51000, 'hub_audit is append-only: rows may not be updated or deleted', 1; END",
      "CREATE OR ALTER TRIGGER [hub_audit_subjects_no_change] ON [hub_audit_subjects] INSTEAD OF UPDATE, DELETE AS BEGIN SET NOCOUNT ON; THROW 51000, 'hub_audit_subjects is append-only: rows may not be updated or deleted', 1; END",
    ]);
    assert.deepEqual(buildAppendOnlyRevokes('mssql'), []);
  });

  it('SQLite and PostgreSQL: every audit table refuses both UPDATE and DELETE (PostgreSQL also TRUNCATE)', () => {
    for (const table of AUDIT_TABLES) {
      const sqlite = buildAppendOnlyGuards('sqlite').filter((s) => s.includes(` ON "${table}" `));
      assert.deepEqual(
        sqlite.map((s) => /BEFORE (\w+)/.exec(s)?.[1]),
        ['UPDATE', 'DELETE'],
      );
      for (const s of sqlite) assert.match(s, /RAISE\(ABORT, '.+ is append-only/);
      const postgres = buildAppendOnlyGuards('postgres').filter(
        (s) => s.startsWith('CREATE TRIGGER') && s.includes(`ON "${table}"`),
      );
      assert.deepEqual(
        postgres.map((s) => /BEFORE ([A-Z ]+?) ON/.exec(s)?.[1]),
        ['UPDATE OR DELETE', 'TRUNCATE'],
      );
      assert.ok(
        buildAppendOnlyRevokes('postgres').includes(
          `REVOKE UPDATE, DELETE, TRUNCATE ON "${table}" FROM PUBLIC, CURRENT_USER`,
        ),
      );
    }
  });
});
