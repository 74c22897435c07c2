import type { Knex } from 'knex';
import type { DatabaseName } from './databases.ts';

export type WriteKind = 'INSERT' | 'UPDATE';

/**
 * Makes every write of the kinds given to one table fail inside the database, as a full disk, a
 * lost connection or a read-only replica would, while reads still work. Returns what allows them
 * again.
 */
export async function refuseWrites(
  knex: Knex,
  db: DatabaseName,
  table: string,
  kinds: WriteKind[],
  message: string,
): Promise<() => Promise<void>> {
  const name = `${table}_refuse`;
  if (db === 'sqlite') {
    for (const kind of kinds)
      await knex.raw(
        `CREATE TRIGGER ${name}_${kind.toLowerCase()} BEFORE ${kind} ON ${table}
         BEGIN SELECT RAISE(ABORT, '${message}'); END`,
      );
    return async () => {
      for (const kind of kinds) await knex.raw(`DROP TRIGGER ${name}_${kind.toLowerCase()}`);
    };
  }
  await knex.raw(`CREATE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '${message}'; END $$`);
  await knex.raw(`CREATE TRIGGER ${name} BEFORE ${kinds.join(' OR ')} ON ${table}
    FOR EACH ROW EXECUTE FUNCTION ${name}()`);
  return async () => {
    await knex.raw(`DROP TRIGGER ${name} ON ${table}`);
    await knex.raw(`DROP FUNCTION ${name}()`);
  };
}
