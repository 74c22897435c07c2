/**
 * node --import tsx tests/bench/bare-query-server.ts <warehouse.sqlite> <limit>
 * The yardstick of the saved-query benchmark: plain express and better-sqlite3 prepared
 * statements over the hub's SQLite warehouse, running the SQL the hub compiles for
 * widows-with-vehicles (the same select list, join, conditions, order and keyset, and a page
 * asked for by number started from the sort keys of the rows before it), without
 * tokens, grants, parameter checks, sealed tokens, rate limits or audit. Its `next` is the last
 * row's keys in plain JSON. Prints "Bare query server listening on http://127.0.0.1:PORT".
 */
import Database from 'better-sqlite3';
import express from 'express';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { QUERY_COLUMNS } from './api-shape.ts';

const HOST = '127.0.0.1';

const SELECT =
  'select `cspd_personal_info`.`national_id` as `c0`, `cspd_personal_info`.`first_name` as `c1`, ' +
  '`cspd_personal_info`.`family_name` as `c2`, `cspd_personal_info`.`birth_date` as `c3`, ' +
  '`dvld_vehicles`.`vehicle_type` as `c4`, `dvld_vehicles`.`model_year` as `c5`, ' +
  '`dvld_vehicles`.`registration_number` as `k1`, `cspd_personal_info`.`national_id` as `hub_nid` ' +
  'from `cspd_personal_info` inner join `dvld_vehicles` on `cspd_personal_info`.`national_id` = `dvld_vehicles`.`national_id` ' +
  'where `cspd_personal_info`.`marital_status` = ? and `cspd_personal_info`.`birth_date` <= ?';
const KEYSET =
  ' and (`cspd_personal_info`.`national_id` >= ? and (`cspd_personal_info`.`national_id` > ? or ' +
  '(`cspd_personal_info`.`national_id` = ? and `dvld_vehicles`.`registration_number` > ?)))';
/** The sort keys alone, for finding where a page asked for by number starts (as the hub does). */
const KEYS_ONLY =
  'select `cspd_personal_info`.`national_id` as `nid`, `dvld_vehicles`.`registration_number` as `reg` ' +
  SELECT.slice(SELECT.indexOf(' from '));
const KEY_ORDER =
  ' order by `cspd_personal_info`.`national_id` asc, `dvld_vehicles`.`registration_number` asc';
const ORDER =
  ' order by `cspd_personal_info`.`national_id` asc, `dvld_vehicles`.`registration_number` asc, ' +
  '`cspd_personal_info`.`first_name` asc, `cspd_personal_info`.`family_name` asc, `cspd_personal_info`.`birth_date` asc, ' +
  '`dvld_vehicles`.`vehicle_type` asc, `dvld_vehicles`.`model_year` asc';

type Row = Record<string, unknown>;

interface Cursor {
  nid: string;
  reg: string;
  seen: number;
  page: number;
}

function main(): void {
  const file = process.argv[2];
  const limit = Number(process.argv[3]);
  if (file === undefined || !Number.isInteger(limit))
    throw new Error('usage: bare-query-server.ts <warehouse.sqlite> <limit>');
  const db = new Database(file, { readonly: true });
  db.pragma('cache_size = -16384');
  const byOffset = db.prepare<unknown[], Row>(`${SELECT}${ORDER} limit ? offset ?`);
  const byKeyset = db.prepare<unknown[], Row>(`${SELECT}${KEYSET}${ORDER} limit ?`);
  const pageStart = db.prepare<unknown[], { nid: string; reg: string }>(
    `${KEYS_ONLY}${KEY_ORDER} limit 1 offset ?`,
  );

  const app = express();
  app.use(express.json({ limit: '100kb' }));
  app.post('/queries/widows', (req, res) => {
    const body = (req.body ?? {}) as {
      params?: { born_before?: string };
      page?: number;
      page_size?: number;
      next?: string;
    };
    const bornBefore = body.params?.born_before ?? '';
    const pageSize = body.page_size ?? 100;
    const page = body.page ?? 1;
    const before = Math.min((page - 1) * pageSize, limit);
    // A page by number starts after the last row before it, found by its sort keys alone.
    const start =
      body.next === undefined && before > 0 && before < limit
        ? pageStart.get('W', bornBefore, before - 1)
        : undefined;
    const cursor: Cursor | null =
      body.next !== undefined
        ? (JSON.parse(Buffer.from(body.next, 'base64url').toString('utf8')) as Cursor)
        : start === undefined
          ? null
          : { nid: start.nid, reg: start.reg, seen: before, page };
    const seen = cursor?.seen ?? before;
    const current = cursor?.page ?? page;
    const take = Math.min(limit - seen, pageSize);
    const rows =
      cursor === null
        ? byOffset.all('W', bornBefore, take + 1, seen)
        : byKeyset.all('W', bornBefore, cursor.nid, cursor.nid, cursor.nid, cursor.reg, take + 1);
    const returned = rows.slice(0, take);
    const more = rows.length > take && seen + take < limit;
    const last = returned.at(-1);
    const next: Cursor | null =
      more && last !== undefined
        ? { nid: String(last.c0), reg: String(last.k1), seen: seen + take, page: current + 1 }
        : null;
    res.json({
      query: 'widows-with-vehicles',
      columns: [...QUERY_COLUMNS],
      rows: returned.map((row) =>
        Object.fromEntries(QUERY_COLUMNS.map((column, i) => [column, row[`c${i}`]])),
      ),
      page: current,
      page_size: pageSize,
      has_more: more,
      ...(rows.length > take && !more ? { truncated: true } : {}),
      ...(next === null ? {} : { next: Buffer.from(JSON.stringify(next)).toString('base64url') }),
    });
  });
  const server = app.listen(0, HOST);
  void once(server, 'listening').then(() => {
    const { port } = server.address() as AddressInfo;
    process.stdout.write(`Bare query server listening on http://${HOST}:${port}\n`);
  });
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => db.close());
  });
}

main();
