import assert from 'node:assert/strict';
import { rebuildPersonKeyForTable } from '../../warehouse/person-key.ts';
import type { QueryRunResult } from '../../server/services/query-service.ts';
import { assertApiError, saveQueryAsSuperAdmin, startApiHub, type ApiHub } from '../support/api-hub.ts';
import { describeEachDatabase } from '../support/databases.ts';
import { validId } from '../support/registry-fixture.ts';

/** Persons added to the fixture so that sort keys repeat and hold NULLs. */
const EXTRA_PEOPLE = Array.from({ length: 24 }, (_, i) => ({
  national_id: validId(200 + i),
  full_name: ['أمل', 'هدى', 'رنا'][i % 3]!,
  gender: i % 2 === 0 ? 'F' : 'M',
  // Every fourth person has no birth date, and the dates repeat: many rows tie on the sort key.
  birth_date: i % 4 === 0 ? null : ['1950-01-01', '1960-06-15', '1970-12-31'][i % 3]!,
  marital_status: i % 5 === 0 ? null : ['W', 'M', 'S'][i % 3]!,
}));

const EXTRA_VEHICLES = Array.from({ length: 10 }, (_, i) => ({
  national_id: validId(200 + i * 2),
  registration_number: `70-${7000 + i}`,
  vehicle_type: i % 2 === 0 ? 'سيارة' : 'شاحنة',
  model_year: i % 3 === 0 ? null : 2010 + (i % 2),
  insured: i % 2 === 0,
}));

/** NAF's and VEH's queries differ only in name and entity: a next token must not cross between them. */
const BY_BIRTH = {
  tables: ['reg_people'],
  columns: ['reg_people.full_name', 'reg_people.birth_date', 'reg_people.marital_status'],
  order_by: [
    { column: 'reg_people.birth_date', direction: 'desc' },
    { column: 'reg_people.marital_status', direction: 'asc' },
  ],
  limit: 1000,
};

describeEachDatabase('Consumer API: saved query pages continued with next', (db) => {
  let hub: ApiHub;
  let naf: string;
  let veh: string;
  let part: string;

  const run = (token: string, name: string, body: unknown) =>
    hub.call('POST', `/api/v1/queries/${name}`, { token, json: body });
  const ok = async (token: string, name: string, body: unknown): Promise<QueryRunResult> => {
    const res = await run(token, name, body);
    assert.equal(res.status, 200, res.text);
    return res.body as QueryRunResult;
  };

  /** Every page from the first, each continued with the previous answer's next. */
  async function walk(
    token: string,
    name: string,
    params: Record<string, unknown>,
    pageSize: number,
    first: Record<string, unknown> = {},
  ): Promise<QueryRunResult[]> {
    const pages = [await ok(token, name, { params, page_size: pageSize, ...first })];
    while (pages.at(-1)!.next !== undefined) {
      const previous = pages.at(-1)!;
      assert.equal(previous.has_more, true, 'a page with next says has_more');
      pages.push(await ok(token, name, { params, page_size: pageSize, next: previous.next }));
      assert.ok(pages.length < 200, 'the walk ends');
    }
    assert.equal(pages.at(-1)!.has_more, false);
    return pages;
  }

  const unpaged = async (token: string, name: string, params: Record<string, unknown> = {}) => {
    const all = await ok(token, name, { params, page_size: 1000 });
    assert.equal(all.has_more, false);
    assert.equal(all.next, undefined);
    return all.rows;
  };

  before(async () => {
    hub = await startApiHub(db.url());
    await hub.ctx.knex.transaction(async (trx) => {
      await trx('reg_people').insert(EXTRA_PEOPLE);
      await trx('veh_vehicles').insert(EXTRA_VEHICLES);
      for (const table of ['reg_people', 'veh_vehicles'])
        await rebuildPersonKeyForTable(trx, table, 'national_id', '2026-03-02 08:00:00');
    });
    await hub.grant('NAF', 'reg_people');
    await hub.grant('NAF', 'veh_vehicles');
    // PART may read people's names, genders and birth dates, not their national IDs: its rows
    // can look alike in everything it reads.
    await hub.grant('PART', 'reg_people', ['full_name', 'gender', 'birth_date']);
    await hub.grant('VEH', 'reg_people');
    const unlimited = { ratePerMinute: 1_000_000, ratePerDay: 1_000_000_000 };
    naf = (await hub.createCaller('NAF', unlimited)).token;
    veh = (await hub.createCaller('VEH', unlimited)).token;
    part = (await hub.createCaller('PART', unlimited)).token;

    await saveQueryAsSuperAdmin(hub, { name: 'pages-by-birth', entity: 'NAF', ...BY_BIRTH });
    await saveQueryAsSuperAdmin(hub, {
      name: 'pages-owners',
      entity: 'NAF',
      tables: ['reg_people', 'veh_vehicles'],
      join: 'left',
      columns: ['reg_people.full_name', 'veh_vehicles.vehicle_type', 'veh_vehicles.model_year'],
      conditions: [{ column: 'reg_people.gender', op: '=', param: 'gender' }],
      params: { gender: { type: 'string' } },
      order_by: [
        { column: 'veh_vehicles.model_year', direction: 'asc' },
        { column: 'reg_people.marital_status', direction: 'desc' },
      ],
      limit: 1000,
    });
    await saveQueryAsSuperAdmin(hub, {
      name: 'pages-born-before',
      entity: 'NAF',
      tables: ['reg_people'],
      columns: ['reg_people.national_id', 'reg_people.full_name'],
      conditions: [{ column: 'reg_people.birth_date', op: '<=', param: 'born_before' }],
      params: { born_before: { type: 'date', required: true } },
      order_by: [{ column: 'reg_people.birth_date', direction: 'desc' }],
      limit: 7,
    });
    await saveQueryAsSuperAdmin(hub, {
      name: 'pages-look-alike',
      entity: 'PART',
      tables: ['reg_people'],
      columns: ['reg_people.gender', 'reg_people.birth_date'],
      order_by: [{ column: 'reg_people.birth_date', direction: 'asc' }],
      limit: 1000,
    });
    await saveQueryAsSuperAdmin(hub, { name: 'pages-vehicles', entity: 'VEH', ...BY_BIRTH });
  });

  after(async () => {
    await hub?.close();
  });

  describe('walking every page with next', () => {
    it('returns exactly the rows of one unpaged run, in order, though sort keys repeat and hold NULLs', async () => {
      const all = await unpaged(naf, 'pages-by-birth');
      assert.ok(all.length >= 30, `${all.length} rows`);
      assert.ok(all.some((r) => r['reg_people.birth_date'] === null));
      for (const pageSize of [1, 2, 3, 7, 29]) {
        const pages = await walk(naf, 'pages-by-birth', {}, pageSize);
        assert.deepEqual(
          pages.flatMap((p) => p.rows),
          all,
          `page size ${pageSize}`,
        );
        assert.deepEqual(
          pages.map((p) => p.page),
          pages.map((_, i) => i + 1),
        );
      }
    });

    it('follows a left join, NULLs of missing rows included, in both directions, with a parameter', async () => {
      for (const params of [{}, { gender: 'F' }, { gender: 'M' }]) {
        const all = await unpaged(naf, 'pages-owners', params);
        assert.ok(all.some((r) => r['veh_vehicles.model_year'] === null));
        assert.ok(all.some((r) => r['veh_vehicles.model_year'] !== null));
        for (const pageSize of [1, 4, 5]) {
          const rows = (await walk(naf, 'pages-owners', params, pageSize)).flatMap((p) => p.rows);
          assert.deepEqual(rows, all, `${JSON.stringify(params)} page size ${pageSize}`);
        }
      }
    });

    it('rows that look alike in everything the entity may read are each returned once', async () => {
      const all = await unpaged(part, 'pages-look-alike');
      const distinct = new Set(all.map((r) => JSON.stringify(r)));
      assert.ok(distinct.size < all.length - 10, 'many rows repeat');
      for (const pageSize of [1, 2, 3, 5, 8]) {
        const rows = (await walk(part, 'pages-look-alike', {}, pageSize)).flatMap((p) => p.rows);
        assert.deepEqual(rows, all, `page size ${pageSize}`);
      }
    });

    it('continues a page asked for by number, and page numbers still answer as before', async () => {
      for (const [name, token] of [
        ['pages-by-birth', naf],
        ['pages-look-alike', part],
      ] as const) {
        const all = await unpaged(token, name);
        for (const pageSize of [2, 3]) {
          const page3 = await ok(token, name, { page: 3, page_size: pageSize });
          assert.deepEqual(page3.rows, all.slice(2 * pageSize, 3 * pageSize));
          assert.equal(page3.page, 3);
          const rest = await walk(token, name, {}, pageSize, { page: 3 });
          assert.deepEqual(
            rest.flatMap((p) => p.rows),
            all.slice(2 * pageSize),
            `${name} page size ${pageSize}`,
          );
          assert.equal(rest.at(-1)!.page, Math.ceil(all.length / pageSize));
        }
      }
    });

    it('every page asked for by number holds the rows at its place in one unpaged run, past the last page too, and its next continues there', async () => {
      const cases = [
        { name: 'pages-by-birth', token: naf, params: {} },
        { name: 'pages-owners', token: naf, params: { gender: 'F' } },
        { name: 'pages-owners', token: naf, params: {} },
        { name: 'pages-look-alike', token: part, params: {} },
      ];
      for (const { name, token, params } of cases) {
        const all = await unpaged(token, name, params);
        for (const pageSize of [1, 3, 7]) {
          const last = Math.ceil(all.length / pageSize);
          for (let number = 1; number <= last + 1; number++) {
            const at = `${name} ${JSON.stringify(params)} page ${number} of ${pageSize}`;
            const page = await ok(token, name, { params, page: number, page_size: pageSize });
            assert.deepEqual(page.rows, all.slice((number - 1) * pageSize, number * pageSize), at);
            assert.equal(page.page, number, at);
            assert.equal(page.has_more, number < last, at);
            assert.equal(page.next !== undefined, number < last, at);
            if (page.next === undefined) continue;
            const following = await ok(token, name, { params, page_size: pageSize, next: page.next });
            assert.deepEqual(following.rows, all.slice(number * pageSize, (number + 1) * pageSize), at);
            assert.equal(following.page, number + 1, at);
          }
        }
      }
    });

    it("stops at the definition's limit: the last page says truncated and carries no next", async () => {
      const params = { born_before: '2000-01-01' };
      const pages = await walk(naf, 'pages-born-before', params, 3);
      assert.deepEqual(
        pages.map((p) => [p.rows.length, p.has_more, p.truncated ?? false, p.next !== undefined]),
        [
          [3, true, false, true],
          [3, true, false, true],
          [1, false, true, false],
        ],
      );
      const numbered = await ok(naf, 'pages-born-before', { params, page: 1, page_size: 100 });
      assert.deepEqual(
        pages.flatMap((p) => p.rows),
        numbered.rows,
      );
      // By number too: the page that reaches the limit is cut off, and the one after it is empty.
      const byNumber = await Promise.all(
        [1, 2, 3, 4].map((page) => ok(naf, 'pages-born-before', { params, page, page_size: 3 })),
      );
      assert.deepEqual(
        byNumber.map((p) => [p.rows, p.has_more, p.truncated ?? false, p.next !== undefined]),
        [
          ...pages.map((p) => [p.rows, p.has_more, p.truncated ?? false, p.next !== undefined]),
          [[], false, true, false],
        ],
      );
    });

    it('a page size may change between pages', async () => {
      const all = await unpaged(naf, 'pages-by-birth');
      const first = await ok(naf, 'pages-by-birth', { page_size: 4 });
      const second = await ok(naf, 'pages-by-birth', { page_size: 9, next: first.next });
      assert.deepEqual([...first.rows, ...second.rows], all.slice(0, 13));
      assert.equal(second.page, 2);
    });
  });

  describe('a next token is good for one query, its parameters and its entity', () => {
    async function tokenOf(name = 'pages-by-birth', params: Record<string, unknown> = {}) {
      const first = await ok(naf, name, { params, page_size: 2 });
      assert.equal(typeof first.next, 'string');
      return first.next!;
    }
    const refused = (res: Awaited<ReturnType<typeof run>>) =>
      assertApiError(res, 400, 'invalid_request', /^next: /);

    it('an edited, shortened, lengthened or emptied token → 400, with nothing returned', async () => {
      const token = await tokenOf();
      const swap = (text: string, at: number) =>
        text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1);
      const dot = token.indexOf('.');
      const variants = [
        swap(token, 0),
        swap(token, dot + 3),
        swap(token, Math.floor(token.length / 2)),
        swap(token, token.length - 1),
        token.slice(0, -1),
        token.slice(0, Math.floor(token.length / 2)),
        token.slice(0, 20) + token.slice(21),
        `${token}A`,
        `${token}.${token}`,
        token.replace(/\./g, ''),
        ' ',
        'not-a-token',
        Buffer.from('{"values":[null],"seen":2,"ties":0,"page":2}').toString('base64url'),
      ];
      for (const next of variants) refused(await run(naf, 'pages-by-birth', { page_size: 2, next }));
      assertApiError(await run(naf, 'pages-by-birth', { next: '' }), 400, 'invalid_request');
      assertApiError(await run(naf, 'pages-by-birth', { next: 42 }), 400, 'invalid_request');
      // The token itself still works: the refusals changed nothing.
      assert.equal((await ok(naf, 'pages-by-birth', { page_size: 2, next: token })).page, 2);
    });

    it('a token sent with other parameters → 400', async () => {
      const token = await tokenOf('pages-born-before', { born_before: '2000-01-01' });
      refused(
        await run(naf, 'pages-born-before', {
          params: { born_before: '1999-12-31' },
          page_size: 2,
          next: token,
        }),
      );
      refused(
        await run(naf, 'pages-owners', { params: { gender: 'F' }, next: await tokenOf('pages-owners') }),
      );
      const optional = await tokenOf('pages-owners', { gender: 'F' });
      refused(await run(naf, 'pages-owners', { next: optional }));
      assert.equal(
        (await ok(naf, 'pages-owners', { params: { gender: 'F' }, page_size: 2, next: optional })).page,
        2,
      );
    });

    it("a token sent to another query, or by another entity's client → 400", async () => {
      refused(await run(naf, 'pages-owners', { next: await tokenOf('pages-by-birth') }));
      // VEH's query has the same tables, columns and order as NAF's, and still its token does not open there.
      const foreign = await ok(veh, 'pages-vehicles', { page_size: 2 });
      refused(await run(naf, 'pages-by-birth', { page_size: 2, next: foreign.next }));
    });

    it('a token issued before the query was saved again → 400', async () => {
      const saveWithLimit = (limit: number) =>
        saveQueryAsSuperAdmin(hub, {
          name: 'pages-resaved',
          entity: 'NAF',
          tables: ['reg_people'],
          columns: ['reg_people.full_name'],
          limit,
        });
      await saveWithLimit(1000);
      const token = await tokenOf('pages-resaved');
      await saveWithLimit(999);
      refused(await run(naf, 'pages-resaved', { page_size: 2, next: token }));
    });

    it('page and next together → 400', async () => {
      assertApiError(
        await run(naf, 'pages-by-birth', { page: 2, next: await tokenOf() }),
        400,
        'invalid_request',
        /page or next/,
      );
    });
  });

  describe('grants are checked again on every page', () => {
    it('a revoke between pages → 403 on the next page', async () => {
      await hub.grant('REV', 'reg_people');
      await saveQueryAsSuperAdmin(hub, {
        name: 'pages-revoked',
        entity: 'REV',
        tables: ['reg_people'],
        columns: ['reg_people.full_name', 'reg_people.birth_date'],
        order_by: [{ column: 'reg_people.birth_date', direction: 'asc' }],
      });
      const { token } = await hub.createCaller('REV');
      const first = await ok(token, 'pages-revoked', { page_size: 2 });
      await hub.revoke('REV', 'reg_people', ['birth_date']);
      assertApiError(
        await run(token, 'pages-revoked', { page_size: 2, next: first.next }),
        403,
        'column_not_granted',
        /reg_people\.birth_date/,
      );
    });

    it('a grant that changes the order between pages → 400 asking to start again', async () => {
      await hub.grant('ORD', 'reg_people', ['full_name', 'birth_date']);
      await saveQueryAsSuperAdmin(hub, {
        name: 'pages-reordered',
        entity: 'ORD',
        tables: ['reg_people'],
        columns: ['reg_people.full_name'],
        order_by: [{ column: 'reg_people.birth_date', direction: 'asc' }],
      });
      const { token } = await hub.createCaller('ORD');
      const first = await ok(token, 'pages-reordered', { page_size: 2 });
      // With the national ID readable, it now breaks ties: the old position no longer fits the order.
      await hub.grant('ORD', 'reg_people', ['national_id']);
      assertApiError(
        await run(token, 'pages-reordered', { page_size: 2, next: first.next }),
        400,
        'invalid_request',
        /order has changed/,
      );
    });
  });
});
