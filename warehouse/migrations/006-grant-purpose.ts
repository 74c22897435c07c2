import type { Knex } from 'knex';

/**
 * Every grant says why (purpose), on what legal ground (legal basis) and until when (expiry).
 * Grants made before this migration keep counting, without expiry: taking access away from
 * running systems because a form field did not exist yet would break them unannounced. Their
 * purpose and basis stay NULL, shown as "not recorded", so a data-protection officer can find
 * them and have each one granted again with a purpose, or revoked.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hub_grants', (t) => {
    t.string('purpose', 500).nullable();
    t.string('legal_basis', 500).nullable();
    // ISO 8601 UTC instant (toISOString), so text order is time order in every dialect.
    t.string('expires_at', 32).nullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.alterTable('hub_grants', (t) => {
    t.dropColumn('purpose');
    t.dropColumn('legal_basis');
    t.dropColumn('expires_at');
  });
}
