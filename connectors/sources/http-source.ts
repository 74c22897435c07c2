import type { ConnectorDefinition, HttpSourceDefinition } from '../definition.ts';
import { filterPastWatermark } from '../compare-cursor.ts';
import type { ReadOptions, Source, SourceRecord } from './source.ts';

export type HttpConnectorDefinition = ConnectorDefinition & { source: HttpSourceDefinition };
type Pagination = HttpSourceDefinition['pagination'];
type Params = Record<string, string>;
type Fail = (reason: string, cause?: unknown) => Error;

const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

interface Page {
  records: SourceRecord[];
  body: unknown;
}

interface Fetcher {
  def: HttpConnectorDefinition;
  headers: Record<string, string>;
  closing: AbortSignal;
}

/** Reads a JSON API page by page; env supplies the ${NAME} secrets in header values. */
export function openHttpSource(def: HttpConnectorDefinition, env: NodeJS.ProcessEnv = process.env): Source {
  const closing = new AbortController();
  const fetcher: Fetcher = { def, headers: expandHeaders(def, env), closing: closing.signal };
  return {
    read: (options: ReadOptions) => readHttp(fetcher, options.since),
    close: () => {
      closing.abort();
      return Promise.resolve();
    },
  };
}

function expandHeaders(def: HttpConnectorDefinition, env: NodeJS.ProcessEnv): Record<string, string> {
  const headers: Record<string, string> = { accept: 'application/json' };
  for (const [name, template] of Object.entries(def.source.headers)) {
    const value = template.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_match, variable: string) => {
      const replacement = env[variable];
      if (replacement === undefined || replacement === '') {
        throw new Error(
          `connector ${def.name}: header ${name} needs environment variable ${variable}, which is not set`,
        );
      }
      return replacement;
    });
    // fetch would refuse these on every request with a message that names neither header nor connector.
    if (!HEADER_VALUE.test(value)) {
      throw new Error(
        `connector ${def.name}: header ${name} has a line break or a character HTTP headers cannot carry`,
      );
    }
    headers[name.toLowerCase()] = value;
  }
  return headers;
}

function readHttp(fetcher: Fetcher, since: string | null): AsyncGenerator<SourceRecord> {
  const { source } = fetcher.def;
  const base: Params =
    since !== null && source.since_param !== undefined ? { [source.since_param]: since } : {};
  // A server that takes the watermark filters itself; otherwise filter here.
  const cursor = source.since_param === undefined ? source.cursor : undefined;
  return filterPastWatermark(flatten(pages(fetcher, source.pagination, base)), cursor, since);
}

async function* flatten(pages: AsyncIterable<SourceRecord[]>): AsyncGenerator<SourceRecord> {
  for await (const records of pages) yield* records;
}

function pages(fetcher: Fetcher, pagination: Pagination, base: Params): AsyncGenerator<SourceRecord[]> {
  switch (pagination.style) {
    case 'none':
      return singlePage(fetcher, base);
    case 'page':
      return numberedPages(fetcher, base, pagination);
    case 'offset':
      return offsetPages(fetcher, base, pagination);
    case 'cursor':
      return cursorPages(fetcher, base, pagination);
  }
}

async function* singlePage(fetcher: Fetcher, base: Params): AsyncGenerator<SourceRecord[]> {
  yield (await fetchPage(fetcher, base)).records;
}

async function* numberedPages(
  fetcher: Fetcher,
  base: Params,
  p: Extract<Pagination, { style: 'page' }>,
): AsyncGenerator<SourceRecord[]> {
  for (let page = p.first_page; ; page++) {
    const params = { ...base, [p.page_param]: String(page), [p.size_param]: String(p.page_size) };
    const { records } = await fetchPage(fetcher, params);
    yield records;
    if (records.length < p.page_size) return;
  }
}

async function* offsetPages(
  fetcher: Fetcher,
  base: Params,
  p: Extract<Pagination, { style: 'offset' }>,
): AsyncGenerator<SourceRecord[]> {
  for (let offset = 0; ;) {
    const params = { ...base, [p.offset_param]: String(offset), [p.limit_param]: String(p.page_size) };
    const { records } = await fetchPage(fetcher, params);
    yield records;
    if (records.length < p.page_size) return;
    offset += records.length;
  }
}

async function* cursorPages(
  fetcher: Fetcher,
  base: Params,
  p: Extract<Pagination, { style: 'cursor' }>,
): AsyncGenerator<SourceRecord[]> {
  let cursor: string | undefined;
  do {
    const params = cursor === undefined ? base : { ...base, [p.cursor_param]: cursor };
    const page = await fetchPage(fetcher, params);
    yield page.records;
    const next = nextCursor(page.body, p.next_path);
    // A server that hands back the cursor it was given would otherwise be read forever.
    if (next !== undefined && next === cursor) {
      throw new Error(`connector ${fetcher.def.name}: ${p.next_path} repeats the cursor ${next}; stopping`);
    }
    cursor = next;
  } while (cursor !== undefined);
}

function nextCursor(body: unknown, nextPath: string): string | undefined {
  const value = atPath(body, nextPath);
  if (typeof value === 'number') return String(value);
  return typeof value === 'string' && value !== '' ? value : undefined;
}

async function fetchPage(fetcher: Fetcher, params: Params): Promise<Page> {
  const url = new URL(fetcher.def.source.url);
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  const shown = `GET ${displayUrl(fetcher.def.source.url, url, params)}`;
  const fail: Fail = (reason, cause) =>
    new Error(`connector ${fetcher.def.name}: ${shown} ${reason}`, { cause });
  const response = await send(fetcher, url, fail);
  const failed: Fail = (reason, cause) => fail(`returned status ${response.status}: ${reason}`, cause);
  if (!response.ok) {
    await response.body?.cancel();
    throw failed(response.statusText || 'not a success status');
  }
  const body = await readJson(response, failed);
  return { records: recordsOf(body, fetcher.def.source.records, failed), body };
}

async function send(fetcher: Fetcher, url: URL, fail: Fail): Promise<Response> {
  const timeout = fetcher.def.source.timeout_ms;
  try {
    const signal = AbortSignal.any([fetcher.closing, AbortSignal.timeout(timeout)]);
    return await fetch(url, { headers: fetcher.headers, signal });
  } catch (err) {
    const name = err instanceof Error ? err.name : '';
    if (name === 'TimeoutError') throw fail(`timed out after ${timeout} ms`, err);
    if (name === 'AbortError') throw fail('was aborted: the source was closed', err);
    throw fail(`failed: ${describeFetchError(err)}`, err);
  }
}

function describeFetchError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  // undici reports "fetch failed" and keeps the useful part (ECONNREFUSED, ENOTFOUND) in the cause.
  return err.cause instanceof Error ? `${err.message} (${err.cause.message})` : err.message;
}

async function readJson(response: Response, fail: Fail): Promise<unknown> {
  const text = await response.text();
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw fail('the body is not JSON', err);
  }
}

function recordsOf(body: unknown, recordsPath: string, fail: Fail): SourceRecord[] {
  const records = atPath(body, recordsPath);
  const where = recordsPath === '' ? 'the body' : `records path "${recordsPath}"`;
  if (!Array.isArray(records)) throw fail(`${where} is not an array`);
  records.forEach((record: unknown, i) => {
    if (!isRecord(record)) throw fail(`item ${i} of ${where} is not an object`);
  });
  return records as SourceRecord[];
}

function atPath(body: unknown, dotted: string): unknown {
  if (dotted === '') return body;
  let value = body;
  for (const key of dotted.split('.')) {
    if (!isRecord(value)) return undefined;
    value = value[key];
  }
  return value;
}

function isRecord(value: unknown): value is SourceRecord {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The URL for messages: no credentials, and no values of query parameters written into the definition (API keys). */
function displayUrl(configured: string, url: URL, params: Params): string {
  const shown = new URL(url);
  shown.username = '';
  shown.password = '';
  for (const name of new URL(configured).searchParams.keys()) {
    if (!(name in params)) shown.searchParams.set(name, '***');
  }
  return shown.toString();
}
