import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeEachDatabase } from '../support/databases.ts';
import { assertDciError, recordsOf, searchItems, sendChecked, sendValid } from './support/dci-assert.ts';
import {
  buildEnvelope,
  buildSearch,
  byUin,
  P,
  startDciHub,
  UNKNOWN,
  type DciHub,
} from './support/dci-hub.ts';

type Json = Record<string, unknown>;
const SAMPLES = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../server/dci/spec/samples');

const predicate = (...expressions: Array<[string, string, unknown]>): Json => ({
  query_type: 'predicate',
  query: expressions.map(([attribute_name, operator, attribute_value], i) => ({
    seq_num: i + 1,
    expression1: { attribute_name, operator, attribute_value },
  })),
});
const groupIds = (records: Json[]) =>
  records.map((r) => (r.group_identifier as Array<{ identifier_value: string }>)[0]!.identifier_value);
const memberIds = (records: Json[]) =>
  records.map((r) => (r.member_identifier as Array<{ identifier_value: string }>)[0]!.identifier_value);

describeEachDatabase('DCI search: social registry and CRVS through the query engine', (db) => {
  let hub: DciHub;
  let spmis: string;

  // The YAML's query oneOf cannot tell an expression template from an idtype-value object (both
  // are {type, value: object}), so no template query validates: those are sent unchecked.
  const socialSearch = async (criteria: Json, options: { template?: boolean } = {}) => {
    const send = options.template === true ? sendChecked : sendValid;
    const res = await send(
      hub,
      'social',
      '/registry/sync/search',
      buildEnvelope('search', buildSearch(criteria)),
      spmis,
    );
    assert.equal(res.status, 200, res.text);
    return searchItems(res.body);
  };
  const crvsSearch = async (criteria: Json, token = spmis) => {
    const res = await sendValid(
      hub,
      'crvs',
      '/registry/sync/search',
      buildEnvelope('search', buildSearch(criteria)),
      token,
    );
    assert.equal(res.status, 200, res.text);
    return searchItems(res.body);
  };

  before(async () => {
    // The DCI samples carry this placeholder in place of a signature.
    hub = await startDciHub(db.url(), { HUB_DCI_PLACEHOLDER_SIGNATURES: 'Base64(signing content)' });
    for (const table of ['cspd_personal_info', 'cspd_births', 'cspd_deaths', 'naf_households'])
      await hub.grant('SPMIS', table);
    spmis = (await hub.createCaller('SPMIS')).token;
  });
  after(async () => hub?.close());

  it('finds households by poverty score with the social registry expression, each with its members', async () => {
    const [item] = await socialSearch(
      {
        query_type: 'expression',
        response_entity: 'Group',
        query: {
          type: 'ns:org:QueryType:NoSql',
          value: { expression: { collection: 'Group', query: { $and: [{ poverty_score: { $lt: 3 } }] } } },
        },
      },
      { template: true },
    );
    const records = recordsOf(item);
    assert.deepEqual(groupIds(records), ['H2']);
    assert.equal(records[0]!.poverty_score, 2.1);
    assert.equal(records[0]!.group_size, 1);
    assert.deepEqual(memberIds(records[0]!.member_list as Json[]), [P.huda]);
    assert.deepEqual(item!.pagination, { page_size: 100, page_number: 1, total_count: 1 });
  });

  it('finds the household of a person by UIN, and its poverty score', async () => {
    const [item] = await socialSearch(byUin(P.baby, { response_entity: 'Group' }));
    const [group] = recordsOf(item);
    assert.deepEqual(groupIds([group!]), ['H1']);
    assert.equal(group!.poverty_score, 4.5);
    assert.deepEqual(memberIds(group!.member_list as Json[]).sort(), [P.amina, P.baby, P.omar].sort());
    const [head] = recordsOf((await socialSearch(byUin(P.amina)))[0]);
    assert.equal(head!.poverty_score, 4.5);
  });

  it('finds households by size and region with predicates', async () => {
    const [item] = await socialSearch(predicate(['group_size', 'ge', '3'], ['region', 'eq', 'Central']));
    assert.deepEqual(groupIds(recordsOf(item)), ['H1']);
    const [none] = await socialSearch(predicate(['group_size', 'ge', '3'], ['region', 'eq', 'North']));
    assert.deepEqual(recordsOf(none), []);
  });

  it('finds female widows as members, sorted by poverty score', async () => {
    const [item] = await socialSearch(
      {
        query_type: 'expression',
        response_entity: 'Member',
        query: {
          type: 'ns:org:QueryType:NoSql',
          value: {
            expression: {
              collection: 'Group',
              query: {
                $and: [
                  { 'demographic_info.person.sex': { $eq: 'female' } },
                  { marital_status: { $eq: 'W' } },
                ],
              },
            },
          },
        },
        sort: [{ attribute_name: 'poverty_score', sort_order: 'asc' }],
      },
      { template: true },
    );
    const records = recordsOf(item);
    assert.deepEqual(memberIds(records), [P.huda]);
    assert.equal((records[0]!.demographic_info as Json).sex, 'female');
  });

  it('answers the CRVS checks: alive, married, mother of a child under two', async () => {
    const [dead] = recordsOf((await crvsSearch(byUin(P.khalid)))[0]);
    assert.equal(dead!.deathdate, '2025-11-20T00:00:00Z');
    const [alive] = recordsOf((await crvsSearch(byUin(P.huda)))[0]);
    assert.equal(alive!.identifier, P.huda);
    assert.equal(alive!.deathdate, undefined);
    assert.equal(alive!.marital_status, 'W');
    const [married] = recordsOf((await crvsSearch(byUin(P.amina)))[0]);
    assert.equal(married!.marital_status, 'M');
    const [children] = await crvsSearch(
      predicate(['mother_uin', 'eq', P.amina], ['birth_date', 'ge', '2024-03-02']),
    );
    const under2 = recordsOf(children);
    assert.deepEqual(
      under2.map((r) => r.identifier),
      [P.baby],
    );
    assert.deepEqual(under2[0]!.parent1_identifier, { identifier_type: 'UIN', identifier: P.amina });
    const [none] = await crvsSearch(
      predicate(['mother_uin', 'eq', P.huda], ['birth_date', 'ge', '2024-03-02']),
    );
    assert.deepEqual(recordsOf(none), []);
  });

  it('reads age as years on the hub clock', async () => {
    const [item] = await crvsSearch(predicate(['age', 'lt', '10'], ['sex', 'eq', 'male']));
    assert.deepEqual(
      recordsOf(item).map((r) => r.identifier),
      [P.omar],
    );
  });

  it('answers an unknown person with a success and no records, never a 404', async () => {
    assert.deepEqual(recordsOf((await crvsSearch(byUin(UNKNOWN)))[0]), []);
    assert.deepEqual(recordsOf((await socialSearch(byUin(UNKNOWN)))[0]), []);
  });

  it('pages and sorts as asked, with the total count', async () => {
    const page = async (page_number: number, sort_order: string) =>
      (
        await crvsSearch({
          ...predicate(['sex', 'eq', 'female']),
          sort: [{ attribute_name: 'birth_date', sort_order }],
          pagination: { page_size: 2, page_number },
        })
      )[0]!;
    const first = await page(1, 'asc');
    const second = await page(2, 'asc');
    assert.deepEqual(
      recordsOf(first).map((r) => r.identifier),
      [P.huda, P.amina],
    );
    assert.deepEqual(
      recordsOf(second).map((r) => r.identifier),
      [P.baby],
    );
    assert.deepEqual(second.pagination, { page_size: 2, page_number: 2, total_count: 3 });
    assert.deepEqual(
      recordsOf(await page(1, 'desc')).map((r) => r.identifier),
      [P.baby, P.amina],
    );
  });

  it('rejects a bad item with its reason code and still answers the other items', async () => {
    const message = {
      transaction_id: 'txn-batch',
      search_request: [
        {
          reference_id: 'a',
          timestamp: '2026-03-02T08:00:00Z',
          search_criteria: { ...byUin(P.huda), pagination: { page_size: 0 } },
        },
        {
          reference_id: 'b',
          timestamp: '2026-03-02T08:00:00Z',
          search_criteria: { query_type: 'graphql', query: { type: 'UIN', value: P.huda } },
        },
        {
          reference_id: 'c',
          timestamp: '2026-03-02T08:00:00Z',
          search_criteria: byUin(P.huda, { sort: [{ attribute_name: 'shoe_size', sort_order: 'asc' }] }),
        },
        {
          reference_id: 'd',
          timestamp: '2026-03-02T08:00:00Z',
          search_criteria: predicate(['shoe_size', 'eq', '42']),
        },
        { reference_id: 'e', timestamp: '2026-03-02T08:00:00Z', search_criteria: byUin(P.huda) },
        { reference_id: 'e', timestamp: '2026-03-02T08:00:00Z', search_criteria: byUin(P.huda) },
        { reference_id: 'f', timestamp: 'yesterday', search_criteria: byUin(P.huda) },
        {
          reference_id: 'g',
          timestamp: '2026-03-02T08:00:00Z',
          search_criteria: {
            query_type: 'expression',
            query: [
              {
                expression1: { attribute_name: 'sex', operator: 'eq', attribute_value: 'male' },
                condition: 'or',
                expression2: { attribute_name: 'marital_status', operator: 'eq', attribute_value: 'W' },
              },
            ],
          },
        },
      ],
    };
    const body = buildEnvelope('search', message);
    body.header = { ...(body.header as Json), total_count: 8 };
    const res = await sendChecked(hub, 'crvs', '/registry/sync/search', body, spmis);
    assert.equal(res.status, 200, res.text);
    const items = searchItems(res.body);
    assert.deepEqual(
      items.map((i) => [i.reference_id, i.status, i.status_reason_code]),
      [
        ['a', 'rjct', 'rjct.pagination.invalid'],
        ['b', 'rjct', 'rjct.search_criteria.invalid'],
        ['c', 'rjct', 'rjct.sort.invalid'],
        ['d', 'rjct', 'rjct.filter.invalid'],
        ['e', 'succ', undefined],
        ['e', 'rjct', 'rjct.reference_id.duplicate'],
        ['f', 'rjct', 'rjct.timestamp.invalid'],
        ['g', 'rjct', 'rjct.search_criteria.invalid'],
      ],
    );
    assert.equal((res.body as { message: { transaction_id: string } }).message.transaction_id, 'txn-batch');
  });

  it('refuses a message it cannot read as a whole with err.request.bad, as the YAML shapes errors', async () => {
    const valid = buildEnvelope('search', buildSearch(byUin(P.huda)));
    const cases: Array<[string, unknown]> = [
      ['no message', { header: valid.header }],
      ['no header', { message: valid.message }],
      ['header without sender_id', { ...valid, header: { ...(valid.header as Json), sender_id: undefined } }],
      ['wrong action', { ...valid, header: { ...(valid.header as Json), action: 'subscribe' } }],
      [
        '100-character transaction_id',
        { ...valid, message: { ...(valid.message as Json), transaction_id: 'x'.repeat(100) } },
      ],
      [
        'search_request not a list',
        { ...valid, message: { transaction_id: 't', search_request: { reference_id: 'a' } } },
      ],
      ['body is a list', [valid]],
    ];
    for (const registry of ['social', 'crvs'] as const) {
      for (const apiPath of ['/registry/sync/search', '/registry/search']) {
        for (const [why, body] of cases) {
          const res = await sendChecked(hub, registry, apiPath, body, spmis);
          assertDciError(res, 400, 'err.request.bad');
          assert.ok(res.status === 400, `${registry} ${apiPath} ${why}`);
        }
        const notJson = await hub.call(`/dci/${registry}${apiPath}`, undefined, spmis);
        assertDciError(notJson, 400, 'err.request.bad');
      }
    }
    const raw = await fetch(`${hub.baseUrl}/dci/crvs/registry/sync/search`, {
      method: 'POST',
      headers: { authorization: `Bearer ${spmis}`, 'content-type': 'application/json' },
      body: '{"header":',
    });
    assert.equal(raw.status, 400);
    assert.equal(
      ((await raw.json()) as { errors: Array<{ code: string }> }).errors[0]!.code,
      'err.request.bad',
    );
  });

  it('gives every DCI sample request a valid answer', async () => {
    for (const registry of ['social', 'crvs'] as const) {
      const files = readdirSync(path.join(SAMPLES, registry)).filter((f) => f.endsWith('req.json'));
      assert.ok(files.length >= 5);
      for (const file of files) {
        const sample = JSON.parse(readFileSync(path.join(SAMPLES, registry, file), 'utf8')) as Json;
        const res = await sendChecked(hub, registry, '/registry/sync/search', sample, spmis);
        assert.equal(res.status, 200, `${file}: ${res.text}`);
        for (const item of searchItems(res.body))
          assert.ok(item.status === 'succ' || item.status_reason_code !== undefined, file);
      }
    }
  });
});
