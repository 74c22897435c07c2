/**
 * node --import tsx tests/bench/bare-server.ts <warehouse.sqlite>
 * The yardstick of the API benchmark: plain express over the hub's SQLite warehouse, without
 * tokens, grants, rate limits, audit or security headers. The person lookup and the batch are
 * what a person would write by hand: better-sqlite3 prepared statements on one connection
 * (the hub's reader pragmas), in one read transaction a request, making the hub's reads — which of the tables hold the person
 * (one probe of each table's national-ID index), then each holding table's granted columns in
 * the hub's row order — and nothing else. The saved query's first page is its join and filter
 * written by hand, prepared once on the same connection and run in a read transaction.
 * Prints "Bare server listening on http://127.0.0.1:PORT".
 */
import Database from 'better-sqlite3';
import express, { type Request, type Response } from 'express';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { closeWarehouse, openWarehouse } from '../../warehouse/db.ts';
import { PAGE_SIZE, PERSON_TABLES, QUERY_COLUMNS, QUERY_LIMIT, QUERY_NAME } from './api-shape.ts';

const HOST = '127.0.0.1';
const ALIAS_OF_NATIONAL_ID = 'hub_nid';
const TABLE_NAMES = PERSON_TABLES.map((t) => t.table);

type Row = Record<string, unknown>;
type ReadPersons = (ids: string[]) => Map<string, Record<string, Row[]>>;

/** Prepared statements by SQL text, as any better-sqlite3 program keeps them. */
function buildStatementCache(db: Database.Database): (sql: string) => Database.Statement {
  const statements = new Map<string, Database.Statement>();
  return (sql) => {
    let statement = statements.get(sql);
    if (statement === undefined) statements.set(sql, (statement = db.prepare(sql)));
    return statement;
  };
}

const marks = (n: number) => new Array<string>(n).fill('?').join(', ');

/**
 * Each person's rows in the tables that hold them, read as the hub reads them: one statement
 * probing each table's national-ID index for all the IDs, then one statement per holding table.
 */
function readPersons(
  prepare: (sql: string) => Database.Statement,
  ids: string[],
): Map<string, Record<string, Row[]>> {
  const holdings = prepare(
    PERSON_TABLES.map(
      ({ table }, i) =>
        `SELECT "national_id", ${i} AS "table_index" FROM "${table}" WHERE "national_id" IN (${marks(ids.length)})`,
    ).join(' UNION ALL '),
  ).all(...PERSON_TABLES.flatMap(() => ids)) as Array<{ national_id: string; table_index: number }>;
  const persons = new Map<string, Record<string, Row[]>>();
  const holders = new Map<string, Set<string>>(TABLE_NAMES.map((t) => [t, new Set()]));
  for (const { national_id, table_index } of holdings) {
    if (!persons.has(national_id))
      persons.set(national_id, Object.fromEntries(TABLE_NAMES.map((t) => [t, []])));
    holders.get(TABLE_NAMES[table_index]!)!.add(national_id);
  }
  for (const { table, columns, order } of PERSON_TABLES) {
    const held = [...holders.get(table)!];
    if (held.length === 0) continue;
    const rows = prepare(
      `SELECT ${columns.map((c) => `"${c}"`).join(', ')} FROM "${table}" WHERE "national_id" IN (${marks(held.length)}) ORDER BY ${order.map((c) => `"${c}" ASC`).join(', ')}`,
    ).all(...held) as Row[];
    for (const row of rows) persons.get(String(row.national_id))![table]!.push(row);
  }
  return persons;
}

const notFound = (nationalId: string) => ({
  code: 'not_found',
  message: `no person with national ID ${nationalId}`,
});

function lookUpPerson(read: ReadPersons, req: Request<{ nid: string }>, res: Response): void {
  const nationalId = req.params.nid;
  const tables = read([nationalId]).get(nationalId);
  if (tables === undefined) {
    res.status(404).json({ error: notFound(nationalId) });
    return;
  }
  res.json({ national_id: nationalId, tables });
}

function lookUpBatch(read: ReadPersons, req: Request, res: Response): void {
  const ids = (req.body as { national_ids?: unknown } | undefined)?.national_ids;
  if (!Array.isArray(ids) || ids.length === 0 || ids.some((id) => typeof id !== 'string')) {
    res.status(400).json({ error: { code: 'invalid_request', message: 'national_ids: a list of IDs' } });
    return;
  }
  const persons = read(ids as string[]);
  res.json({
    results: (ids as string[]).map((id) => {
      const tables = persons.get(id);
      return tables === undefined
        ? { national_id: id, status: 404, error: notFound(id) }
        : { national_id: id, status: 200, tables };
    }),
  });
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

/** The saved query's statement, prepared once: its SQL text is the same for every date and page size. */
type WidowsStatement = (bornBefore: string, pageSize: number) => Array<Record<string, unknown>>;

function prepareWidowsStatement(knex: Knex, prepare: (sql: string) => Database.Statement): WidowsStatement {
  const { sql } = buildWidowsQuery(knex, '1970-01-01', 1).toSQL();
  const statement = prepare(sql);
  return (bornBefore, pageSize) =>
    statement.all('W', bornBefore, Math.min(QUERY_LIMIT, pageSize + 1)) as Array<Record<string, unknown>>;
}

function runWidowsQuery(widows: WidowsStatement, req: Request, res: Response): void {
  const body = (req.body ?? {}) as QueryBody;
  const bornBefore = body.params?.born_before;
  const pageSize = typeof body.page_size === 'number' ? body.page_size : PAGE_SIZE;
  if (typeof bornBefore !== 'string') {
    res.status(400).json({ error: { code: 'invalid_parameter', message: 'params.born_before: required' } });
    return;
  }
  const rows = widows(bornBefore, pageSize);
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
  const db = new Database(file);
  for (const pragma of ['query_only = ON', 'busy_timeout = 15000', 'cache_size = -16384']) db.pragma(pragma);
  const prepare = buildStatementCache(db);
  // A request's reads in one read transaction: one snapshot, and one WAL read lock instead of one a statement.
  const read: ReadPersons = db.transaction((ids: string[]) => readPersons(prepare, ids));
  const app = express();
  app.use(express.json({ limit: '100kb' }));
  app.get('/persons/:nid', (req, res) => lookUpPerson(read, req, res));
  app.post('/persons\\:batch', (req, res) => lookUpBatch(read, req, res));
  const widows = db.transaction(prepareWidowsStatement(warehouse.knex, prepare));
  app.post('/queries/widows', (req, res) => runWidowsQuery(widows, req, res));
  const server = app.listen(0, HOST);
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`Bare server listening on http://${HOST}:${port}\n`);
  process.once('SIGTERM', () => {
    server.closeAllConnections();
    server.close(() => {
      db.close();
      void closeWarehouse(warehouse);
    });
  });
}

await main();
