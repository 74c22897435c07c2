import type { Knex } from 'knex';

/** Failed token requests counted against one subject (`address:<ip>` or `client:<id>`) in every window. */
export async function countTokenFailures(knex: Knex, subject: string): Promise<number> {
  const [row] = await knex('hub_token_failures')
    .where({ subject })
    .sum<Array<{ n: number | string | null }>>({ n: 'failures' });
  return Number(row?.n ?? 0);
}
