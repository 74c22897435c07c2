import type { Knex } from 'knex';

/**
 * API rate limits counted in the warehouse instead of in each hub process, so that N processes
 * on one or many hosts refuse a client at its limit, not at N times it. One row per client holds
 * the current minute's and day's window (start in milliseconds since the epoch, and the count),
 * moved forward in place by the one statement that counts a request (warehouse/rate-windows.ts).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('hub_rate_limits', (t) => {
    t.string('client_id', 64).primary();
    t.bigInteger('minute_start').notNullable();
    t.integer('minute_count').notNullable();
    t.bigInteger('day_start').notNullable();
    t.integer('day_count').notNullable();
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('hub_rate_limits');
}
