import assert from 'node:assert/strict';
import { revokeAccess } from '../../privileges/grants.ts';
import { superAdmin } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { recordsOf, searchItems, sendChecked, type Registry } from './support/dci-assert.ts';
import { buildEnvelope, buildSearch, byUin, P, startDciHub, type DciHub } from './support/dci-hub.ts';

type Json = Record<string, unknown>;

/** Keys that carry an ungranted column's value in a record. */
const UNGRANTED_KEYS = [
  'name',
  'birthdate',
  'birth_date',
  'marital_status',
  'deathdate',
  'poverty_score',
  'group_size',
  'location',
  'place',
  'parent1_identifier',
  'relationship_head',
];

function collectKeys(value: unknown, keys = new Set<string>()): Set<string> {
  if (Array.isArray(value)) value.forEach((v) => collectKeys(v, keys));
  else if (typeof value === 'object' && value !== null) {
    for (const [k, v] of Object.entries(value)) {
      keys.add(k);
      collectKeys(v, keys);
    }
  }
  return keys;
}

describeEachDatabase('DCI grants: an attribute the sender was not granted is never returned', (db) => {
  let hub: DciHub;
  let token: string;
  /** Values of the ungranted columns, long enough to be recognised in a response text. */
  let secrets: string[];

  const search = async (registry: Registry, criteria: Json) => {
    const res = await sendChecked(
      hub,
      registry,
      '/registry/sync/search',
      buildEnvelope('search', buildSearch(criteria)),
      token,
    );
    assert.equal(res.status, 200, res.text);
    return res;
  };

  before(async () => {
    hub = await startDciHub(db.url());
    // MOE may read who is who and who lives with whom: no names, dates, scores or civil status.
    await hub.grant('MOE', 'cspd_personal_info', ['national_id', 'gender']);
    await hub.grant('MOE', 'naf_households', ['national_id', 'household_id']);
    await hub.grant('MOE', 'cspd_births', ['national_id', 'birth_registration_number']);
    token = (await hub.createCaller('MOE')).token;
    const people = await hub.ctx
      .knex('cspd_personal_info')
      .select<Json[]>('first_name', 'family_name', 'birth_date');
    const households = await hub.ctx.knex('naf_households').select<Json[]>('region');
    const deaths = await hub.ctx.knex('cspd_deaths').select<Json[]>('death_date');
    secrets = [...people, ...households, ...deaths]
      .flatMap((row) => Object.values(row).map(String))
      .filter((v) => v.length >= 4);
  });
  after(async () => hub?.close());

  it('returns only granted attributes in every record of every kind of search', async () => {
    const searches: Array<[Registry, Json]> = [
      ['crvs', byUin(P.huda)],
      ['crvs', byUin(P.khalid)],
      [
        'crvs',
        {
          query_type: 'predicate',
          query: [{ expression1: { attribute_name: 'sex', operator: 'eq', attribute_value: 'female' } }],
        },
      ],
      ['social', byUin(P.baby, { response_entity: 'Member' })],
      ['social', byUin(P.amina, { response_entity: 'Member' })],
      [
        'social',
        {
          query_type: 'predicate',
          response_entity: 'Member',
          query: [{ expression1: { attribute_name: 'sex', operator: 'eq', attribute_value: 'male' } }],
        },
      ],
    ];
    let records = 0;
    for (const [registry, criteria] of searches) {
      const res = await search(registry, criteria);
      const found = recordsOf(searchItems(res.body)[0]);
      records += found.length;
      const keys = collectKeys(found);
      for (const key of UNGRANTED_KEYS)
        assert.ok(!keys.has(key), `${registry} ${JSON.stringify(criteria)} returned ${key}`);
      for (const secret of secrets)
        assert.ok(!res.text.includes(secret), `${registry} returned the ungranted value ${secret}`);
    }
    assert.ok(records >= 6, 'the searches found records to check');
  });

  it('refuses a filter or a sort on an ungranted attribute instead of answering from it', async () => {
    const byBirthDate = {
      query_type: 'predicate',
      query: [
        { expression1: { attribute_name: 'birth_date', operator: 'lt', attribute_value: '1960-01-01' } },
      ],
    };
    const [filtered] = searchItems((await search('crvs', byBirthDate)).body);
    assert.equal(filtered!.status_reason_code, 'rjct.filter.invalid');
    const [sorted] = searchItems(
      (await search('crvs', byUin(P.huda, { sort: [{ attribute_name: 'birth_date', sort_order: 'asc' }] })))
        .body,
    );
    assert.equal(sorted!.status_reason_code, 'rjct.sort.invalid');
    const [scored] = searchItems(
      (
        await search('social', {
          query_type: 'predicate',
          query: [
            { expression1: { attribute_name: 'poverty_score', operator: 'lt', attribute_value: '3.5' } },
          ],
        })
      ).body,
    );
    assert.equal(
      scored!.status_reason_code,
      'rjct.search_criteria.invalid',
      'MOE may not read which members head a household',
    );
  });

  it('takes a revoke into account on the next search', async () => {
    const before = recordsOf(searchItems((await search('crvs', byUin(P.huda))).body)[0]);
    assert.equal(before[0]!.sex, 'female');
    await revokeAccess(hub.ctx, {
      consumer: 'MOE',
      table: 'cspd_personal_info',
      columns: ['gender'],
      actor: superAdmin,
    });
    const after = recordsOf(searchItems((await search('crvs', byUin(P.huda))).body)[0]);
    assert.equal(after[0]!.identifier, P.huda);
    assert.equal(after[0]!.sex, undefined);
  });
});
