import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface HttpRegistryRecord {
  id: string;
  name: string;
  plate: string;
  updated: number;
  [field: string]: unknown;
}

export interface HttpRegistry {
  url: string;
  records: HttpRegistryRecord[];
  /** Answer this page with a 500 (null: never). */
  failOnPage: number | null;
  /** Milliseconds to wait before each page. */
  delayMs: number;
  /** While set, every page waits for it: a reader held mid-run. */
  gate: Promise<void> | null;
  /** Bearer token required in Authorization. */
  token: string;
  requests: string[];
  close(): Promise<void>;
}

/**
 * A vehicle registry's JSON API on loopback, paged with page/page_size and filtered by
 * updated_since: a real server for the http connector to read.
 */
export async function startHttpRegistry(records: HttpRegistryRecord[] = []): Promise<HttpRegistry> {
  const registry: Omit<HttpRegistry, 'url' | 'close'> = {
    records,
    failOnPage: null,
    delayMs: 0,
    gate: null,
    token: 'secret-token',
    requests: [],
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    registry.requests.push(url.pathname + url.search);
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${registry.token}`)
      return send(401, { message: 'unauthorized' });
    const page = Number(url.searchParams.get('page') ?? '1');
    const size = Number(url.searchParams.get('page_size') ?? '100');
    const since = url.searchParams.get('updated_since');
    const answer = () => {
      if (registry.failOnPage === page) return send(500, { message: 'registry database unavailable' });
      const matching = registry.records
        .filter((r) => since === null || r.updated > Number(since))
        .sort((a, b) => a.updated - b.updated);
      send(200, { data: { items: matching.slice((page - 1) * size, page * size) }, page });
    };
    void Promise.resolve(registry.gate).then(() => setTimeout(answer, registry.delayMs));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return Object.assign<typeof registry, Pick<HttpRegistry, 'url' | 'close'>>(registry, {
    url: `http://127.0.0.1:${port}/vehicles`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  });
}

export function vehicleDefinition(url: string, overrides: Record<string, unknown> = {}) {
  return {
    name: 'veh-vehicles',
    entity: 'VEH',
    target: { table: 'veh_vehicles', key: ['registration_number'] },
    source: {
      kind: 'http',
      url,
      headers: { Authorization: 'Bearer ${VEH_TOKEN}' },
      records: 'data.items',
      pagination: { style: 'page', page_size: 4 },
      since_param: 'updated_since',
      cursor: 'updated',
      deleted_flag: { column: 'deleted', value: true },
    },
    mode: 'incremental',
    columns: {
      national_id: { from: 'id', required: true },
      registration_number: { from: 'plate', required: true },
      owner_name: { from: 'name' },
    },
    batch_size: 4,
    ...overrides,
  };
}
