import { once } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { badCheckDigitId, validId } from './registry-fixture.ts';

/** The plate registry's pages: five records, the second one with a wrong check digit. */
const PAGES: Record<string, Array<{ id: string; plate: string }>> = {
  '1': [
    { id: validId(201), plate: 'P-201' },
    { id: badCheckDigitId(202), plate: 'P-202' },
    { id: validId(203), plate: 'P-203' },
  ],
  '2': [
    { id: validId(204), plate: 'P-204' },
    { id: validId(205), plate: 'P-205' },
  ],
};

export interface GatedRegistry {
  url: string;
  /** Holds these pages until each is released. */
  hold(...pages: string[]): void;
  release(...pages: string[]): void;
  close(): Promise<void>;
}

/**
 * A plate registry's JSON API on loopback whose pages wait until the test opens their gate, so a
 * connector run can be caught at a chosen point: before it read anything, or with its first
 * batch loaded and the rest not yet read.
 */
export async function startGatedRegistry(): Promise<GatedRegistry> {
  const gates = new Map<string, { opened: Promise<void>; open: () => void }>();
  const server = http.createServer((req, res) => {
    const page = new URL(req.url ?? '/', 'http://localhost').searchParams.get('page') ?? '1';
    void (gates.get(page)?.opened ?? Promise.resolve()).then(() => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ items: PAGES[page] ?? [] }));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const release = (...pages: string[]) => {
    for (const page of pages) {
      gates.get(page)?.open();
      gates.delete(page);
    }
  };
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/plates`,
    hold(...pages) {
      for (const page of pages) {
        let open: () => void = () => undefined;
        const opened = new Promise<void>((resolve) => (open = resolve));
        gates.set(page, { opened, open });
      }
    },
    release,
    close: () =>
      new Promise<void>((resolve) => {
        release(...gates.keys());
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A full-load connector of VEH over the gated registry: pages of 3 records, batches of 2. */
export const platesDefinition = (url: string) => ({
  name: 'veh-plates',
  entity: 'VEH',
  target: { table: 'veh_plates', key: ['plate'] },
  source: { kind: 'http', url, records: 'items', pagination: { style: 'page', page_size: 3 } },
  mode: 'full',
  columns: {
    national_id: { from: 'id', required: true },
    plate: { from: 'plate', required: true },
  },
  batch_size: 2,
});
