import type { Knex } from 'knex';
import {
  buildAppendOnlyGuards,
  buildAppendOnlyRevokes,
  buildDropAppendOnlyGuards,
} from '../../warehouse/audit/append-only-guards.ts';
import { dialectOf } from '../../warehouse/dialects/index.ts';

/**
 * Plays someone with DDL rights on the warehouse: drops the triggers that refuse UPDATE and
 * DELETE on the audit tables (and takes the revoked privileges back on PostgreSQL), so a test
 * can tamper with rows as such an attacker could, and show what still catches it.
 */
export async function dropAuditGuards(knex: Knex): Promise<void> {
  for (const statement of buildDropAppendOnlyGuards(dialectOf(knex).name)) await knex.raw(statement);
}

/** Puts the guards back as migration 004 made them. */
export async function restoreAuditGuards(knex: Knex): Promise<void> {
  const dialect = dialectOf(knex).name;
  for (const statement of [...buildAppendOnlyGuards(dialect), ...buildAppendOnlyRevokes(dialect)])
    await knex.raw(statement);
}

/** Runs `tamper` with the guards dropped, and puts them back whatever happens. */
export async function tamperWithAudit<T>(knex: Knex, tamper: () => Promise<T>): Promise<T> {
  await dropAuditGuards(knex);
  try {
    return await tamper();
  } finally {
    await restoreAuditGuards(knex);
  }
}
