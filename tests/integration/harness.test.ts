import assert from 'node:assert/strict';
import knexFactory, { type Knex } from 'knex';
import { describeEachDatabase } from '../support/databases.ts';

function connect(url: string): Knex {
  if (url.startsWith('sqlite:')) {
    return knexFactory({
      client: 'better-sqlite3',
      connection: { filename: url.slice('sqlite:'.length) },
      useNullAsDefault: true,
    });
  }
  return knexFactory({ client: 'pg', connection: url });
}

const firstSuiteUrls = new Map<string, string>();

describeEachDatabase('test harness', (db) => {
  let knex: Knex;
  before(() => {
    knex = connect(db.url());
    firstSuiteUrls.set(db.name, db.url());
  });
  after(() => knex.destroy());

  it('stores and reads back Arabic text', async () => {
    await knex.schema.createTable('people', (table) => {
      table.string('national_id').primary();
      table.text('full_name').notNullable();
    });
    await knex('people').insert({ national_id: '29001011234567', full_name: 'فاطمة الزهراء عبد الله' });

    const rows: Array<{ full_name: string }> = await knex('people').select('full_name');
    assert.deepEqual(rows, [{ full_name: 'فاطمة الزهراء عبد الله' }]);
  });
});

describeEachDatabase('test harness, second suite', (db) => {
  let knex: Knex;
  before(() => {
    knex = connect(db.url());
  });
  after(() => knex.destroy());

  it('gets a database of its own', async () => {
    assert.ok(firstSuiteUrls.has(db.name), 'the first suite ran');
    assert.notEqual(db.url(), firstSuiteUrls.get(db.name));
    assert.equal(await knex.schema.hasTable('people'), false);
  });
});
