/**
 * node --import tsx tests/bench/bare-server.ts <warehouse.sqlite>
 * The yardstick of the API benchmark: plain express over the hub's SQLite warehouse, opened the
 * way the hub opens it, running the same indexed statements as the hub's person lookup and the
 * saved query's first page — without tokens, grants, rate limits, audit or security headers.
 * Prints "Bare server listening on http://127.0.0.1:PORT".
 */
import express, { type Request, type Response } from 'express';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { closeWarehouse, openWarehouse } from '../../warehouse/db.ts';
import { PAGE_SIZE, PERSON_TABLES, QUERY_COLUMNS, QUERY_LIMIT, QUERY_NAME } from './api-shape.ts';

const HOST = '127.0.0.1';
const ALIAS_OF_NATIONAL_ID = 'hub_nid';

async function lookUpPerson(knex: Knex, req: Request<{ nid: string }>, res: Response): Promise<void> {
  const nationalId = req.params.nid;
  const known = await knex('hub_persons')
    .where({ national_id: nationalId })
    .first<{ national_id: string } | undefined>('national_id');
  if (known === undefined) {
    res
      .status(404)
      .json({ error: { code: 'not_found', message: `no person with national ID ${nationalId}` } });
    return;
  }
  const tables: Record<string, unknown[]> = {};
  for (const { table, columns } of PERSON_TABLES) {
    tables[table] = await knex(table)
      .where('national_id', nationalId)
      .select([...columns]);
  }
  res.json({ national_id: nationalId, tables });
}

interface QueryBody {
  params?: { born_before?: unknown };
  page_size?: unknown;
}

/** The statement the hub compiles for page 1 of the saved query, written out by hand. */
function buildWidowsQuery(knex: Knex, bornBefore: string, pageSize: number): Knex.QueryBuilder {
  const aliases = Object.fromEntries(QUERY_COLUMNS.map((column, i) => [`c${i}`, column]));
  return knex
    .queryBuilder()
    .from('cspd_personal_info')
    .select(aliases)
    .join('dvld_vehicles', 'cspd_personal_info.national_id', 'dvld_vehicles.national_id')
    .where('cspd_personal_info.marital_status', '=', 'W')
    .where('cspd_personal_info.birth_date', '<=', bornBefore)
    .orderBy([
      { column: 'cspd_personal_info.national_id', order: 'asc' },
      { column: 'dvld_vehicles.registration_number', order: 'asc' },
    ])
    .limit(Math.min(QUERY_LIMIT, pageSize + 1))
    .select({ [ALIAS_OF_NATIONAL_ID]: 'cspd_personal_info.national_id' });
}

async function runWidowsQuery(knex: Knex, req: Request, res: Response): Promise<void> {
  const body = (req.body ?? {}) as QueryBody;
  const bornBefore = body.params?.born_before;
  const pageSize = typeof body.page_size === 'number' ? body.page_size : PAGE_SIZE;
  if (typeof bornBefore !== 'string') {
    res.status(400).json({ error: { code: 'invalid_parameter', message: 'params.born_before: required' } });
    return;
  }
  const rows = (await buildWidowsQuery(knex, bornBefore, pageSize)) as Array<Record<string, unknown>>;
  res.json({
    query: QUERY_NAME,
    columns: [...QUERY_COLUMNS],
    rows: rows
      .slice(0, pageSize)
      .map((row) => Object.fromEntries(QUERY_COLUMNS.map((column, i) => [column, row[`c${i}`]]))),
    page: 1,
    page_size: pageSize,
    has_more: rows.length > pageSize,
  });
}

async function main(): Promise<void> {
  const file = process.argv[2];
  if (file === undefined) throw new Error('usage: bare-server.ts <warehouse.sqlite>');
  const warehouse = openWarehouse(`sqlite:${file}`);
  const app = express();
  app.use(express.json({ limit: '100kb' }));
  app.get('/persons/:nid', (req, res, next) => lookUpPerson(warehouse.knex, req, res).catch(next));
  app.post('/queries/widows', (req, res, next) => runWidowsQuery(warehouse.knex, req, res).catch(next));
  const server = app.listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`Bare server listening on http://${HOST}:${port}\n`);
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => void closeWarehouse(warehouse));
  });
}

await main();
