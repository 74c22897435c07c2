import assert from 'node:assert/strict';
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { once } from 'node:events';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { readConnectorDefinitions } from '../../../connectors/definition.ts';
import { runConnector, type RunSummary } from '../../../connectors/run-connector.ts';
import { grantAccess } from '../../../privileges/grants.ts';
import { buildApp } from '../../../server/app.ts';
import { closeContext, type AppContext } from '../../../server/context.ts';
import { buildSignature } from '../../../server/dci/dci-signature.ts';
import { createClient, type ClientCredentials } from '../../../server/services/client-service.ts';
import { prepareWarehouse } from '../../../server/services/connector-service.ts';
import { callApi, superAdmin, type ApiResponse, type ManualClock } from '../../support/api-hub.ts';
import { createTempDir } from '../../support/databases.ts';
import { createManualClock, GRANT_TERMS, openTestContext } from '../../support/hub-context.ts';
import { validId, writeDefinition } from '../../support/registry-fixture.ts';

type Json = Record<string, unknown>;

/** The people of the DCI warehouse (the clock stands at 2026-03-02). */
export const P = {
  amina: validId(201), // mother of a child under two and of an older one; married; household H1 head
  baby: validId(202), // born 2025-06-01
  omar: validId(203), // born 2019-04-10
  huda: validId(204), // widow, household H2 head
  khalid: validId(205), // Huda's late husband, died 2025-11-20
  sami: validId(206), // single man, no household
  newborn: validId(207), // appears in a later load
} as const;
export const UNKNOWN = validId(299);

const PEOPLE_HEADER = 'NATNO,FNAME,SNAME,LNAME,SEX,DOB,MARITAL,HH';
export const PEOPLE_ROWS = [
  `${P.amina},آمنة,علي,الحسن,2,1992-02-14,M,H1`,
  `${P.baby},ليان,سامر,الحسن,2,2025-06-01,S,H1`,
  `${P.omar},عمر,سامر,الحسن,1,2019-04-10,S,H1`,
  `${P.huda},هدى,محمد,الخطيب,2,1951-09-30,W,H2`,
  `${P.khalid},خالد,أحمد,الخطيب,1,1948-01-05,M,H2`,
  `${P.sami},سامي,يوسف,النجار,1,1999-12-12,S,`,
];
export const BIRTH_ROWS = [
  `BR-1001,${P.baby},${P.amina},2025-06-01`,
  `BR-0901,${P.omar},${P.amina},2019-04-10`,
];
const DEATH_ROWS = [`DR-501,${P.khalid},2025-11-20`];
const HOUSEHOLD_ROWS = [
  `${P.amina},H1,1,3,Central,4.5`,
  `${P.baby},H1,4,3,Central,4.5`,
  `${P.omar},H1,3,3,Central,4.5`,
  `${P.huda},H2,1,1,North,2.1`,
];

const label = (en: string) => ({ en, ar: en });

function connectorDefinitions(dir: string) {
  return [
    {
      name: 'cspd-personal-info',
      entity: 'CSPD',
      target: { table: 'cspd_personal_info', label: label('Personal information') },
      source: { kind: 'csv', path: path.join(dir, 'people.csv') },
      columns: {
        national_id: { from: 'NATNO', required: true },
        first_name: { from: 'FNAME' },
        second_name: { from: 'SNAME' },
        family_name: { from: 'LNAME' },
        gender: { from: 'SEX', codes: { '1': 'M', '2': 'F' } },
        birth_date: { from: 'DOB', type: 'date' },
        marital_status: { from: 'MARITAL', codes: { S: 'S', M: 'M', W: 'W', A: 'A', D: 'D' } },
        household_id: { from: 'HH' },
      },
    },
    {
      name: 'cspd-births',
      entity: 'CSPD',
      target: { table: 'cspd_births', key: ['birth_registration_number'] },
      source: { kind: 'csv', path: path.join(dir, 'births.csv') },
      columns: {
        birth_registration_number: { from: 'REG_NO', required: true },
        national_id: { from: 'CHILD', required: true },
        mother_national_id: { from: 'MOTHER' },
        birth_date: { from: 'BORN', type: 'date' },
      },
    },
    {
      name: 'cspd-deaths',
      entity: 'CSPD',
      target: { table: 'cspd_deaths' },
      source: { kind: 'csv', path: path.join(dir, 'deaths.csv') },
      columns: {
        death_registration_number: { from: 'REG_NO', required: true },
        national_id: { from: 'DECEASED', required: true },
        death_date: { from: 'DIED', type: 'date' },
      },
    },
    {
      name: 'naf-households',
      entity: 'NAF',
      target: { table: 'naf_households' },
      source: { kind: 'csv', path: path.join(dir, 'households.csv') },
      columns: {
        national_id: { from: 'MEMBER', required: true },
        household_id: { from: 'FILE_NO', required: true },
        relationship_to_head: {
          from: 'RELATION',
          codes: { '1': 'head', '2': 'spouse', '3': 'son', '4': 'daughter' },
        },
        household_size: { from: 'SIZE', type: 'integer' },
        region: { from: 'REGION' },
        poverty_score: { from: 'SCORE', type: 'number' },
      },
    },
  ];
}

export interface DciHub {
  ctx: AppContext;
  clock: ManualClock;
  baseUrl: string;
  dir: string;
  call(urlPath: string, body: unknown, token?: string): Promise<ApiResponse>;
  /** A client of the entity (10,000 calls a minute unless told) and a token for it. */
  createCaller(
    entity: string,
    ratePerMinute?: number,
  ): Promise<{ credentials: ClientCredentials; token: string }>;
  grant(consumer: string, table: string, columns?: string[]): Promise<void>;
  /** Rewrites a source file and runs its connector in full. */
  reload(
    connector: 'cspd-personal-info' | 'cspd-births' | 'cspd-deaths',
    rows: string[],
  ): Promise<RunSummary>;
  close(): Promise<void>;
}

const SOURCE_FILES = {
  'cspd-personal-info': ['people.csv', PEOPLE_HEADER],
  'cspd-births': ['births.csv', 'REG_NO,CHILD,MOTHER,BORN'],
  'cspd-deaths': ['deaths.csv', 'REG_NO,DECEASED,DIED'],
} as const;

/**
 * The real hub on 127.0.0.1, port 0, over a warehouse whose tables carry the names the DCI
 * mapping reads (cspd_personal_info, cspd_births, cspd_deaths, naf_households).
 */
export async function startDciHub(databaseUrl: string, env: Record<string, string> = {}): Promise<DciHub> {
  const clock = createManualClock('2026-03-02T08:00:00.000Z');
  const dir = await createTempDir('hub-dci-');
  const ctx = openTestContext(databaseUrl, dir, { clock });
  Object.assign(ctx.config.dci, {
    placeholderSignatures:
      env.HUB_DCI_PLACEHOLDER_SIGNATURES === undefined ? [] : [env.HUB_DCI_PLACEHOLDER_SIGNATURES],
  });
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, 'people.csv'), [PEOPLE_HEADER, ...PEOPLE_ROWS].join('\n'));
  await writeFile(path.join(dir, 'births.csv'), ['REG_NO,CHILD,MOTHER,BORN', ...BIRTH_ROWS].join('\n'));
  await writeFile(path.join(dir, 'deaths.csv'), ['REG_NO,DECEASED,DIED', ...DEATH_ROWS].join('\n'));
  await writeFile(
    path.join(dir, 'households.csv'),
    ['MEMBER,FILE_NO,RELATION,SIZE,REGION,SCORE', ...HOUSEHOLD_ROWS].join('\n'),
  );
  for (const def of connectorDefinitions(dir)) await writeDefinition(ctx.config.connectorsDir, def.name, def);
  await prepareWarehouse(ctx);
  const connectors = await readConnectorDefinitions(ctx.config.connectorsDir);
  for (const connector of connectors) {
    const summary = await runConnector(connector, ctx, { full: true });
    assert.equal(summary.status, 'succeeded', summary.error ?? '');
  }
  const server = createServer(buildApp(ctx)).listen(0, '127.0.0.1');
  await once(server, 'listening');
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const hub: DciHub = {
    ctx,
    clock,
    baseUrl,
    dir,
    call: (urlPath, body, token) =>
      callApi(baseUrl, 'POST', urlPath, { json: body, ...(token === undefined ? {} : { token }) }),
    async createCaller(entity, ratePerMinute = 10_000) {
      const credentials = await createClient(ctx, { entity, ratePerMinute }, superAdmin.name);
      const res = await callApi(baseUrl, 'POST', '/dci/oauth2/client/token', {
        form: { grant_type: 'client_credentials', ...credentials },
      });
      assert.equal(res.status, 200, res.text);
      return { credentials, token: (res.body as { access_token: string }).access_token };
    },
    async grant(consumer, table, columns = []) {
      await grantAccess(ctx, { consumer, table, columns, actor: superAdmin, ...GRANT_TERMS });
    },
    async reload(name, rows) {
      const [file, header] = SOURCE_FILES[name];
      await writeFile(path.join(dir, file), [header, ...rows].join('\n'));
      const def = connectors.find((c) => c.name === name)!;
      return runConnector(def, ctx, { full: true });
    },
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await closeContext(ctx);
      await rm(dir, { recursive: true, force: true });
    },
  };
  return hub;
}

/** A DCI request envelope as a sender builds it, with a header valid against the YAML. */
export function buildEnvelope(
  action: string,
  message: Json,
  options: { senderUri?: string; signature?: string } = {},
): Json {
  return {
    ...(options.signature === undefined ? {} : { signature: options.signature }),
    header: {
      version: '1.0.0',
      message_id: randomUUID(),
      message_ts: '2026-03-02T08:00:00.000Z',
      action,
      sender_id: 'spmis.example.org',
      ...(options.senderUri === undefined ? {} : { sender_uri: options.senderUri }),
      receiver_id: 'registry-hub',
      total_count: 1,
      is_msg_encrypted: false,
    },
    message,
  };
}

/** A search message of one item. */
export function buildSearch(criteria: Json, referenceId = 'ref-1'): Json {
  return {
    transaction_id: `txn-${randomUUID()}`,
    search_request: [
      { reference_id: referenceId, timestamp: '2026-03-02T08:00:00.000Z', search_criteria: criteria },
    ],
  };
}

export const byUin = (value: string, extra: Json = {}): Json => ({
  query_type: 'idtype-value',
  query: { type: 'UIN', value },
  ...extra,
});

/** A sender's Ed25519 key pair, its public key as PEM for hub clients set-key. */
export function createSenderKey(): { privateKey: KeyObject; publicPem: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  return { privateKey, publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
}

/** Signs an envelope as a DCI sender does, at the hub's clock. */
export function signEnvelope(envelope: Json, key: KeyObject, now: Date): Json {
  const signature = buildSignature({
    key,
    kid: 'sender-key-1',
    senderId: 'spmis.example.org',
    header: envelope.header,
    message: envelope.message,
    now,
  });
  return { signature, ...envelope };
}

/** A real HTTP server that takes callbacks (on-search, notify, ...) and hands them to the test. */
export interface CallbackReceiver {
  url: string;
  received: Json[];
  /** Resolves when `count` messages have arrived in all. */
  waitFor(count: number): Promise<Json[]>;
  close(): Promise<void>;
}

export async function startCallbackReceiver(): Promise<CallbackReceiver> {
  const received: Json[] = [];
  const waiters: Array<{ count: number; resolve: (v: Json[]) => void }> = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as Json);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          message: { ack_status: 'ACK', timestamp: new Date().toISOString(), correlation_id: randomUUID() },
        }),
      );
      for (const w of waiters.filter((x) => received.length >= x.count)) w.resolve(received.slice());
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/callback`,
    received,
    waitFor: (count) =>
      received.length >= count
        ? Promise.resolve(received.slice())
        : new Promise((resolve) => waiters.push({ count, resolve })),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
