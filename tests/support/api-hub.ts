import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { rm, writeFile } from 'node:fs/promises';
import { createServer, request, type RequestOptions, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { readConnectorDefinitions } from '../../connectors/definition.ts';
import { runConnector } from '../../connectors/run-connector.ts';
import type { Actor } from '../../privileges/actor.ts';
import { grantAccess, revokeAccess, type GrantChange } from '../../privileges/grants.ts';
import { buildApp } from '../../server/app.ts';
import { closeContext, type AppContext } from '../../server/context.ts';
import {
  createClient,
  type ClientCredentials,
  type ClientInput,
} from '../../server/services/client-service.ts';
import { prepareWarehouse } from '../../server/services/connector-service.ts';
import { saveQuery } from '../../server/services/query-service.ts';
import { createTempDir } from './databases.ts';
import { createManualClock, GRANT_TERMS, openTestContext } from './hub-context.ts';
import { validId, writeDefinition } from './registry-fixture.ts';

export type ManualClock = ReturnType<typeof createManualClock>;

export const superAdmin: Actor = { name: 'api-test-operator', role: 'super-admin', entity: null };

/** The persons of the tiny warehouse; `vehicleOnly` is in no civil-registry table. */
export const PERSON = {
  mohammad: validId(11),
  fatima: validId(12),
  sara: validId(13),
  omar: validId(14),
  layla: validId(15),
  yousef: validId(16),
  vehicleOnly: validId(17),
} as const;

/** Valid national IDs that no registry holds. */
export const UNKNOWN_PERSON = validId(99);

/** Every registry table of the warehouse, its owner and its columns in catalog order. */
export const REGISTRY_TABLES = {
  reg_people: {
    entity: 'REG',
    key: ['national_id'],
    columns: ['national_id', 'full_name', 'gender', 'birth_date', 'marital_status'],
  },
  reg_households: {
    entity: 'REG',
    key: ['national_id'],
    columns: ['national_id', 'household_id', 'region', 'household_size'],
  },
  veh_vehicles: {
    entity: 'VEH',
    key: ['registration_number'],
    columns: ['national_id', 'registration_number', 'vehicle_type', 'model_year', 'insured'],
  },
} as const satisfies Record<string, { entity: string; key: readonly string[]; columns: readonly string[] }>;

export type RegistryTableName = keyof typeof REGISTRY_TABLES;
export const REGISTRY_TABLE_NAMES = Object.keys(REGISTRY_TABLES) as RegistryTableName[];

const P = PERSON;

// Source exports look like the agencies' own files: other column names, codes and date formats.
const PEOPLE_CSV = [
  'NATNO,NAME_AR,SEX,DOB,MARITAL',
  `${P.mohammad},محمد أحمد العلي,1,01/03/1950,M`,
  `${P.fatima},فاطمة علي حسن,2,15/07/1948,W`,
  `${P.sara},سارة يوسف خليل,2,31/12/1985,W`,
  `${P.omar},عمر حسن سالم,1,01/01/2001,S`,
  `${P.layla},ليلى نور الدين,2,20/05/1979,D`,
  `${P.yousef},يوسف محمود,1,06/06/1970,M`,
].join('\n');

const HOUSEHOLDS_CSV = [
  'NATNO,HH,REGION,SIZE',
  `${P.mohammad},5001,عمان,4`,
  `${P.fatima},5001,عمان,4`,
  `${P.sara},5002,إربد,2`,
  `${P.omar},5003,الزرقاء,1`,
].join('\n');

const VEHICLES_CSV = [
  'OWNER,PLATE,KIND,YEAR,INSURED',
  `${P.mohammad},10-1001,سيارة,2015,1`,
  `${P.mohammad},10-1002,شاحنة,2008,0`,
  `${P.sara},20-2001,سيارة,2020,1`,
  `${P.vehicleOnly},30-3001,دراجة,2018,0`,
].join('\n');

const connectorDefinitions = (dir: string) => [
  {
    name: 'reg-people',
    entity: 'REG',
    entity_label: { en: 'Civil registry', ar: 'السجل المدني' },
    target: { table: 'reg_people', label: { en: 'People', ar: 'الأشخاص' } },
    source: { kind: 'csv', path: path.join(dir, 'people.csv') },
    columns: {
      national_id: { from: 'NATNO', required: true },
      full_name: { from: 'NAME_AR', required: true, label: { en: 'Full name', ar: 'الاسم الكامل' } },
      gender: { from: 'SEX', codes: { '1': 'M', '2': 'F' } },
      birth_date: { from: 'DOB', type: 'date', format: 'DD/MM/YYYY' },
      marital_status: { from: 'MARITAL', codes: { S: 'S', M: 'M', W: 'W', A: 'A', D: 'D' } },
    },
  },
  {
    name: 'reg-households',
    entity: 'REG',
    target: { table: 'reg_households', label: { en: 'Households', ar: 'الأسر' } },
    source: { kind: 'csv', path: path.join(dir, 'households.csv') },
    columns: {
      national_id: { from: 'NATNO', required: true },
      household_id: { from: 'HH', type: 'integer' },
      region: { from: 'REGION' },
      household_size: { from: 'SIZE', type: 'integer' },
    },
  },
  {
    name: 'veh-vehicles',
    entity: 'VEH',
    entity_label: { en: 'Vehicle licensing', ar: 'ترخيص المركبات' },
    target: { table: 'veh_vehicles', key: ['registration_number'] },
    source: { kind: 'csv', path: path.join(dir, 'vehicles.csv') },
    columns: {
      national_id: { from: 'OWNER', required: true },
      registration_number: { from: 'PLATE', required: true },
      vehicle_type: { from: 'KIND' },
      model_year: { from: 'YEAR', type: 'integer' },
      insured: { from: 'INSURED', type: 'boolean' },
    },
  },
];

export interface ApiResponse {
  status: number;
  headers: Headers;
  /** The parsed JSON body, or the raw text when it is not JSON. */
  body: unknown;
  text: string;
}

/**
 * A request sent with node's own client, for what fetch will not send (a GET with a body, a
 * chosen local address), read into an ApiResponse as callApi reads one.
 */
export function sendRawRequest(url: string, options: RequestOptions, body: string): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const req = request(url, options, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (chunk: string) => (text += chunk));
      res.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(res.headers)) {
          if (typeof value === 'string') headers.set(name, value);
        }
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          // The assertions report the raw text.
        }
        resolve({ status: res.statusCode ?? 0, headers, body: parsed, text });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface CallOptions {
  token?: string;
  /** Sent as application/json. */
  json?: unknown;
  /** Sent as application/x-www-form-urlencoded. */
  form?: Record<string, string>;
  /** Sent as is, with the headers given. */
  raw?: string;
  headers?: Record<string, string>;
}

export interface ApiHub {
  ctx: AppContext;
  clock: ManualClock;
  baseUrl: string;
  dir: string;
  /** One HTTP call; never throws on a status. */
  call(method: string, urlPath: string, options?: CallOptions): Promise<ApiResponse>;
  createClient(entity: string, input?: Omit<ClientInput, 'entity'>): Promise<ClientCredentials>;
  /** A bearer token for the credentials; fails the test when the hub refuses them. */
  fetchToken(credentials: ClientCredentials): Promise<string>;
  /** A new client of the entity and a token for it. */
  createCaller(
    entity: string,
    input?: Omit<ClientInput, 'entity'>,
  ): Promise<{ credentials: ClientCredentials; token: string }>;
  grant(consumer: string, table: string, columns?: string[]): Promise<GrantChange>;
  revoke(consumer: string, table: string, columns?: string[]): Promise<GrantChange>;
  close(): Promise<void>;
}

async function writeWarehouseSources(dir: string): Promise<void> {
  await writeFile(path.join(dir, 'people.csv'), PEOPLE_CSV);
  await writeFile(path.join(dir, 'households.csv'), HOUSEHOLDS_CSV);
  await writeFile(path.join(dir, 'vehicles.csv'), VEHICLES_CSV);
}

async function loadWarehouse(ctx: AppContext, dir: string): Promise<void> {
  await writeWarehouseSources(dir);
  for (const def of connectorDefinitions(dir)) await writeDefinition(ctx.config.connectorsDir, def.name, def);
  await prepareWarehouse(ctx);
  for (const connector of await readConnectorDefinitions(ctx.config.connectorsDir)) {
    const summary = await runConnector(connector, ctx, { full: true });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
    assert.equal(summary.rejected, 0, `${connector.name} rejected rows`);
  }
}

async function listen(ctx: AppContext): Promise<Server> {
  const server = createServer(buildApp(ctx)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  return server;
}

async function stopServer(server: Server): Promise<void> {
  const closed = new Promise<void>((resolve, reject) =>
    server.close((err) => (err ? reject(err) : resolve())),
  );
  // fetch keeps connections alive; close would otherwise wait for them to time out.
  server.closeAllConnections();
  await closed;
}

export async function callApi(
  baseUrl: string,
  method: string,
  urlPath: string,
  options: CallOptions = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...options.headers };
  let body: string | undefined;
  if (options.token !== undefined) headers.authorization = `Bearer ${options.token}`;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.form !== undefined) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(options.form).toString();
  } else if (options.raw !== undefined) {
    body = options.raw;
  }
  const response = await fetch(`${baseUrl}${urlPath}`, { method, headers, body, redirect: 'manual' });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // Not JSON: the tests that care assert on the text.
  }
  return { status: response.status, headers: response.headers, body: parsed, text };
}

/**
 * The real express app on 127.0.0.1, port 0, over a fresh warehouse of three registry tables of
 * two entities (REG: reg_people, reg_households; VEH: veh_vehicles) loaded by their connectors.
 * The clock is manual: token expiry and rate windows move when the test says so.
 */
export async function startApiHub(
  databaseUrl: string,
  options: { clock?: ManualClock; env?: NodeJS.ProcessEnv; loadProcesses?: boolean } = {},
): Promise<ApiHub> {
  const clock = options.clock ?? createManualClock('2026-03-02T08:00:00.000Z');
  const dir = await createTempDir('hub-api-');
  const ctx = openTestContext(databaseUrl, dir, {
    clock,
    ...(options.env ? { env: options.env } : {}),
    loadProcesses: options.loadProcesses === true,
  });
  let server: Server | undefined;
  try {
    await loadWarehouse(ctx, dir);
    server = await listen(ctx);
  } catch (err) {
    await closeContext(ctx);
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  const { port } = server.address() as AddressInfo;
  const baseUrl = `http://127.0.0.1:${port}`;
  const running = server;

  const hub: ApiHub = {
    ctx,
    clock,
    baseUrl,
    dir,
    call: (method, urlPath, callOptions) => callApi(baseUrl, method, urlPath, callOptions),
    createClient: (entity, input = {}) => createClient(ctx, { entity, ...input }, superAdmin.name),
    async fetchToken(credentials) {
      const res = await hub.call('POST', '/api/v1/token', {
        json: { grant_type: 'client_credentials', ...credentials },
      });
      assert.equal(res.status, 200, res.text);
      return (res.body as { access_token: string }).access_token;
    },
    async createCaller(entity, input) {
      const credentials = await hub.createClient(entity, input);
      return { credentials, token: await hub.fetchToken(credentials) };
    },
    grant: (consumer, table, columns = []) =>
      grantAccess(ctx, { ...GRANT_TERMS, consumer, table, columns, actor: superAdmin }),
    revoke: (consumer, table, columns = []) =>
      revokeAccess(ctx, { consumer, table, columns, actor: superAdmin }),
    async close() {
      await stopServer(running);
      await closeContext(ctx);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return hub;
}

/** Saves a query definition as the super admin, who may save one for any entity. */
export const saveQueryAsSuperAdmin = (hub: Pick<ApiHub, 'ctx'>, definition: unknown) =>
  saveQuery(hub.ctx, definition, superAdmin.name);

/** Another hub process on a hub's warehouse and key file, with its own connections, caches, limiter and audit writer. */
export interface AnotherHub {
  ctx: AppContext;
  baseUrl: string;
  close(): Promise<void>;
}

/** Serves another hub process on the hub's warehouse, with the hub's clock and the environment given. */
export async function serveAnotherHub(hub: ApiHub, env?: NodeJS.ProcessEnv): Promise<AnotherHub> {
  const ctx = openTestContext(hub.ctx.config.databaseUrl, hub.dir, {
    clock: hub.clock,
    ...(env ? { env } : {}),
  });
  const server = await listen(ctx).catch(async (err: unknown) => {
    await closeContext(ctx);
    throw err;
  });
  return {
    ctx,
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      await stopServer(server);
      await closeContext(ctx);
    },
  };
}

const STACK_TRACE = [
  /\n\s+at /,
  /\bat .+:\d+:\d+/,
  /\.(?:ts|js|mjs|cjs):\d+/,
  /node_modules/,
  /\/work\//,
  /\/tmp\//,
];

/**
 * Asserts the hub's error shape exactly, `{"error": {"code", "message"}}` with nothing else and
 * no stack trace, and returns the message.
 */
export function assertApiError(res: ApiResponse, status: number, code: string, message?: RegExp): string {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status}: ${res.text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  const body = res.body as { error?: { code?: unknown; message?: unknown } };
  assert.deepEqual(Object.keys(body), ['error'], res.text);
  assert.deepEqual(Object.keys(body.error ?? {}).sort(), ['code', 'message'], res.text);
  assert.equal(body.error?.code, code, res.text);
  const text = body.error?.message;
  assert.equal(typeof text, 'string');
  for (const pattern of STACK_TRACE)
    assert.doesNotMatch(res.text, pattern, `stack trace or path in ${res.text}`);
  if (message !== undefined) assert.match(String(text), message);
  return String(text);
}

/**
 * Asserts the token endpoint's error shape exactly, RFC 6749 §5.2's
 * `{"error": "<code>", "error_description": "..."}` with nothing else, no stack trace and no
 * caching, and returns the description.
 */
export function assertOAuthError(
  res: ApiResponse,
  status: number,
  error: string,
  description?: RegExp,
): string {
  assert.equal(res.status, status, `expected ${status} ${error}, got ${res.status}: ${res.text}`);
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/);
  assert.equal(res.headers.get('cache-control'), 'no-store');
  const body = res.body as { error?: unknown; error_description?: unknown };
  assert.deepEqual(Object.keys(body).sort(), ['error', 'error_description'], res.text);
  assert.equal(body.error, error, res.text);
  assert.equal(typeof body.error_description, 'string');
  for (const pattern of STACK_TRACE)
    assert.doesNotMatch(res.text, pattern, `stack trace or path in ${res.text}`);
  if (description !== undefined) assert.match(String(body.error_description), description);
  if (status === 401) assert.match(res.headers.get('www-authenticate') ?? '', /^Basic realm="Registry Hub"/);
  return String(body.error_description);
}

export interface TableFingerprint {
  rows: number;
  checksum: string;
}

/** Row count and a hash of every row, in key order, of each registry table (and the saved queries and grants). */
export async function fetchWarehouseFingerprint(ctx: AppContext): Promise<Record<string, TableFingerprint>> {
  const tables: Array<[string, readonly string[]]> = [
    ...REGISTRY_TABLE_NAMES.map((name): [string, readonly string[]] => [name, REGISTRY_TABLES[name].key]),
    ['hub_queries', ['name']],
    ['hub_grants', ['entity', 'table_name', 'column_name']],
    ['hub_clients', ['client_id']],
    ['hub_tables', ['name']],
    ['hub_persons', ['national_id']],
  ];
  const fingerprint: Record<string, TableFingerprint> = {};
  for (const [table, key] of tables) {
    const rows = await ctx
      .knex(table)
      .orderBy([...key])
      .select<Array<Record<string, unknown>>>('*');
    fingerprint[table] = {
      rows: rows.length,
      checksum: createHash('sha256').update(JSON.stringify(rows)).digest('hex'),
    };
  }
  return fingerprint;
}

interface PersonPathSchema {
  get: {
    responses: Record<
      string,
      {
        content: {
          'application/json': {
            schema: {
              properties: {
                tables: { properties: Record<string, { items: { properties: Record<string, unknown> } }> };
              };
            };
          };
        };
      }
    >;
  };
}

/** The tables and columns an OpenAPI document of the hub describes for the person lookup. */
export function describePersonColumns(doc: { paths: Record<string, unknown> }): Record<string, string[]> {
  const person = doc.paths['/api/v1/persons/{national_id}'] as PersonPathSchema;
  const tables =
    person.get.responses['200']?.content['application/json'].schema.properties.tables.properties ?? {};
  return Object.fromEntries(
    Object.entries(tables).map(([table, schema]) => [table, Object.keys(schema.items.properties)]),
  );
}
