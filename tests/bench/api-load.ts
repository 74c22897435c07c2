import autocannon, { type RequestData, type Result } from 'autocannon';

export const CONNECTIONS = 50;

/** One endpoint under load; `next` gives each request its path and body, so requests differ. */
export interface LoadTarget {
  url: string;
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  next(): { path: string; body?: string };
  /** Concurrent connections; CONNECTIONS unless the endpoint's target says otherwise. */
  connections?: number;
}

/** The values in turn, shared by all connections, so each request reads another row. */
export function rotate<T>(values: readonly T[]): () => T {
  if (values.length === 0) throw new Error('nothing to rotate through');
  let i = 0;
  return () => values[i++ % values.length]!;
}

export async function runLoad(target: LoadTarget, seconds: number): Promise<Result> {
  const setupRequest = (request: RequestData): RequestData => ({ ...request, ...target.next() });
  return autocannon({
    url: target.url,
    connections: target.connections ?? CONNECTIONS,
    duration: seconds,
    requests: [{ method: target.method, headers: target.headers, setupRequest }],
  });
}

/** Completed requests per second over the run (autocannon's "Req/Sec" average). */
export const requestsPerSecond = (r: Result): number => r.requests.average;

export const successes = (r: Result): number =>
  Object.entries(r.statusCodeStats)
    .filter(([status]) => status.startsWith('2'))
    .reduce((sum, [, s]) => sum + s.count, 0);
