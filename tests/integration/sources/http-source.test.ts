import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { NextFunction, Request, Response } from 'express';
import { buildConnectorDefinition } from '../../../connectors/definition.ts';
import type { ConnectorDefinition } from '../../../connectors/definition.ts';
import { openSource } from '../../../connectors/sources/open-source.ts';
import type { ReadOptions, SourceRecord } from '../../../connectors/sources/source.ts';
import { readSourceRecords } from '../../support/load-source-records.ts';

const TOKEN = 'tok-5f2c9a7e';
const env: NodeJS.ProcessEnv = { SSC_API_TOKEN: TOKEN };

const beneficiaries = [
  { national_id: '9871000001', name: 'محمد عبد الله', updated_at: '2024-01-05T08:00:00Z', version: 9 },
  { national_id: '9871000002', name: 'فاطمة الزهراء', updated_at: '2024-02-10T09:30:00Z', version: 10 },
  { national_id: '9871000003', name: 'عليّ بن حسين', updated_at: '2024-03-15T12:00:00Z', version: 11 },
  { national_id: '9871000004', name: 'سارة يوسف', updated_at: '2024-04-01T00:00:00Z', version: 12 },
  { national_id: '9871000005', name: 'ليلى خالد', updated_at: '2024-05-20T16:45:00Z', version: 13 },
];

const ids = (records: SourceRecord[]) => records.map((r) => r.national_id);
const query = (req: Request, name: string) =>
  typeof req.query[name] === 'string' ? req.query[name] : undefined;

function requireToken(req: Request, res: Response, next: NextFunction): void {
  if (req.get('authorization') === `Bearer ${TOKEN}`) next();
  else res.status(401).json({ error: 'unauthorized' });
}

/** The watermark filter a real agency API would apply server-side. */
function since(req: Request) {
  const watermark = query(req, 'updated_since');
  return watermark === undefined ? beneficiaries : beneficiaries.filter((b) => b.updated_at > watermark);
}

function buildApi(requests: string[]): express.Express {
  const app = express();
  app.use((req, _res, next) => {
    requests.push(req.originalUrl);
    next();
  });
  app.use('/api', requireToken);
  app.get('/api/all', (req, res) => {
    res.json(since(req));
  });
  app.get('/api/pages', (req, res) => {
    const page = Number(query(req, 'page'));
    const size = Number(query(req, 'page_size'));
    res.json({ data: { items: since(req).slice((page - 1) * size, page * size) }, page });
  });
  app.get('/api/offsets', (req, res) => {
    const offset = Number(query(req, 'skip'));
    const limit = Number(query(req, 'take'));
    res.json({ results: since(req).slice(offset, offset + limit) });
  });
  app.get('/api/cursors', (req, res) => {
    const start = Number(query(req, 'after') ?? '0');
    const rows = since(req).slice(start, start + 2);
    const next = start + 2 < since(req).length ? String(start + 2) : null;
    res.json({ items: rows, meta: { next } });
  });
  app.get('/api/stuck-cursor', (_req, res) => {
    res.json({ items: [], meta: { next: 'same' } });
  });
  app.get('/api/broken', (_req, res) => {
    res.status(500).json({ error: 'database is down' });
  });
  app.get('/api/html', (_req, res) => {
    res.type('html').send('<html><body>Maintenance</body></html>');
  });
  app.get('/api/not-array', (_req, res) => {
    res.json({ data: { items: 'none today' } });
  });
  return app;
}

describe('HTTP source', () => {
  let server: Server;
  let baseUrl: string;
  const requests: string[] = [];

  before(async () => {
    server = buildApi(requests).listen(0, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  });

  beforeEach(() => {
    requests.length = 0;
  });

  function definition(source: Record<string, unknown>): ConnectorDefinition {
    const raw = {
      name: 'ssc-beneficiaries',
      entity: 'SSC',
      source: { kind: 'http', headers: { Authorization: 'Bearer ${SSC_API_TOKEN}' }, ...source },
      target: { table: 'ssc_beneficiaries' },
      columns: { national_id: { type: 'string' } },
    };
    return buildConnectorDefinition(raw, '/etc/hub/connectors/ssc-beneficiaries.yaml');
  }

  const readAll = (def: ConnectorDefinition, options?: ReadOptions) => readSourceRecords(def, options, env);

  it('reads a top-level array in one request, sending the header with the variable expanded', async () => {
    const records = await readAll(definition({ url: `${baseUrl}/api/all` }));
    assert.deepEqual(records, beneficiaries);
    assert.deepEqual(requests, ['/api/all']);
  });

  it('is refused with 401 without the Authorization header, and says so', async () => {
    const def = definition({ url: `${baseUrl}/api/all`, headers: {} });
    await assert.rejects(readAll(def), (err: Error) => {
      assert.match(err.message, /connector ssc-beneficiaries/);
      assert.ok(err.message.includes(`${baseUrl}/api/all`), err.message);
      assert.match(err.message, /status 401/);
      return true;
    });
  });

  it('refuses to open when a header names an unset environment variable', () => {
    const def = definition({
      url: `${baseUrl}/api/all`,
      headers: { Authorization: 'Bearer ${SSC_MISSING_TOKEN}' },
    });
    assert.throws(() => openSource(def, env), /ssc-beneficiaries.*Authorization.*SSC_MISSING_TOKEN/);
  });

  it('refuses to open when an expanded header value cannot be sent over HTTP', () => {
    const def = definition({ url: `${baseUrl}/api/all` });
    assert.throws(
      () => openSource(def, { SSC_API_TOKEN: 'مفتاح' }),
      (err: Error) =>
        /ssc-beneficiaries: header Authorization/.test(err.message) && !err.message.includes('مفتاح'),
    );
  });

  it('follows page numbers until a short page', async () => {
    const def = definition({
      url: `${baseUrl}/api/pages`,
      records: 'data.items',
      pagination: { style: 'page', page_size: 2 },
    });
    assert.deepEqual(ids(await readAll(def)), ids(beneficiaries));
    assert.deepEqual(requests, [
      '/api/pages?page=1&page_size=2',
      '/api/pages?page=2&page_size=2',
      '/api/pages?page=3&page_size=2',
    ]);
  });

  it('stops at an empty page when the last page was exactly full', async () => {
    const def = definition({
      url: `${baseUrl}/api/pages`,
      records: 'data.items',
      pagination: { style: 'page', page_size: 5 },
    });
    assert.equal((await readAll(def)).length, 5);
    assert.equal(requests.length, 2);
  });

  it('asks for the next page only when the records of the last one are used up', async () => {
    const def = definition({
      url: `${baseUrl}/api/pages`,
      records: 'data.items',
      pagination: { style: 'page', page_size: 2 },
    });
    const source = openSource(def, env);
    for await (const record of source.read({ since: null })) {
      assert.equal(record.national_id, '9871000001');
      break;
    }
    await source.close();
    assert.deepEqual(requests, ['/api/pages?page=1&page_size=2']);
  });

  it('follows offsets with custom parameter names', async () => {
    const def = definition({
      url: `${baseUrl}/api/offsets`,
      records: 'results',
      pagination: { style: 'offset', offset_param: 'skip', limit_param: 'take', page_size: 3 },
    });
    assert.deepEqual(ids(await readAll(def)), ids(beneficiaries));
    assert.deepEqual(requests, ['/api/offsets?skip=0&take=3', '/api/offsets?skip=3&take=3']);
  });

  it('follows a next cursor until it is null', async () => {
    const def = definition({
      url: `${baseUrl}/api/cursors`,
      records: 'items',
      pagination: { style: 'cursor', next_path: 'meta.next', cursor_param: 'after' },
    });
    assert.deepEqual(ids(await readAll(def)), ids(beneficiaries));
    assert.deepEqual(requests, ['/api/cursors', '/api/cursors?after=2', '/api/cursors?after=4']);
  });

  it('stops with an error when the server repeats a cursor', async () => {
    const def = definition({
      url: `${baseUrl}/api/stuck-cursor`,
      records: 'items',
      pagination: { style: 'cursor', next_path: 'meta.next' },
    });
    await assert.rejects(readAll(def), /ssc-beneficiaries: meta\.next repeats the cursor same/);
    assert.equal(requests.length, 2);
  });

  it('sends the watermark as since_param on every page', async () => {
    const def = definition({
      url: `${baseUrl}/api/pages`,
      records: 'data.items',
      pagination: { style: 'page', page_size: 2 },
      since_param: 'updated_since',
      cursor: 'updated_at',
    });
    const records = await readAll(def, { since: '2024-02-10T09:30:00Z' });
    assert.deepEqual(ids(records), ['9871000003', '9871000004', '9871000005']);
    assert.equal(requests.length, 2);
    for (const url of requests) assert.ok(url.includes('updated_since=2024-02-10T09%3A30%3A00Z'), url);
  });

  it('filters on the cursor itself when the API takes no watermark, numerically for numbers', async () => {
    const def = definition({ url: `${baseUrl}/api/all`, cursor: 'version' });
    assert.deepEqual(ids(await readAll(def, { since: '10' })), ['9871000003', '9871000004', '9871000005']);
    assert.deepEqual(requests, ['/api/all']);
  });

  it('reports a 500 with the connector, the URL without its secret query values, and the status', async () => {
    const def = definition({ url: `${baseUrl}/api/broken?api_key=very-secret` });
    await assert.rejects(readAll(def), (err: Error) => {
      assert.match(err.message, /connector ssc-beneficiaries/);
      assert.ok(err.message.includes(`${baseUrl}/api/broken?api_key=***`), err.message);
      assert.match(err.message, /status 500/);
      assert.ok(!err.message.includes('very-secret'));
      assert.ok(!err.message.includes(TOKEN));
      return true;
    });
  });

  it('reports a body that is not JSON', async () => {
    await assert.rejects(readAll(definition({ url: `${baseUrl}/api/html` })), (err: Error) => {
      assert.match(
        err.message,
        /connector ssc-beneficiaries: GET .*\/api\/html returned status 200: the body is not JSON/,
      );
      return true;
    });
  });

  it('reports a records path that does not hold an array', async () => {
    const def = definition({ url: `${baseUrl}/api/not-array`, records: 'data.items' });
    await assert.rejects(
      readAll(def),
      /ssc-beneficiaries: GET .*\/api\/not-array returned status 200: records path "data\.items" is not an array/,
    );
  });

  it('reports a server that does not answer in time', async () => {
    const silent = express()
      .get('/slow', () => undefined)
      .listen(0, '127.0.0.1');
    try {
      await new Promise<void>((resolve) => silent.once('listening', resolve));
      const port = (silent.address() as AddressInfo).port;
      const def = definition({ url: `http://127.0.0.1:${port}/slow`, timeout_ms: 200 });
      await assert.rejects(readAll(def), /ssc-beneficiaries: GET .*\/slow timed out after 200 ms/);
    } finally {
      silent.closeAllConnections();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    }
  });
});
