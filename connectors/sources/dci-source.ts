import { randomUUID } from 'node:crypto';
import type { ConnectorDefinition, DciSourceDefinition } from '../definition.ts';
import type { ReadOptions, Source, SourceRecord } from './source.ts';

export type DciConnectorDefinition = ConnectorDefinition & { source: DciSourceDefinition };
type Json = Record<string, unknown>;

const HEADER_VALUE = /^[\x21-\x7e]+$/;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Reads any DCI-standard registry through its sync search, page by page. Records arrive as
 * nested JSON (name.given_name, identifiers[0].identifier_value) and are flattened to dotted
 * field names, which the connector's columns map with `from` like any other source's fields.
 */
export function openDciSource(def: DciConnectorDefinition, env: NodeJS.ProcessEnv = process.env): Source {
  const closing = new AbortController();
  const token = expandToken(def, env);
  return {
    read: (options: ReadOptions) => readDci(def, token, options.since, closing.signal),
    close: () => {
      closing.abort();
      return Promise.resolve();
    },
  };
}

function expandToken(def: DciConnectorDefinition, env: NodeJS.ProcessEnv): string {
  const token = def.source.token.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g, (_match, variable: string) => {
    const value = env[variable];
    if (value === undefined || value === '')
      throw new Error(
        `connector ${def.name}: source.token needs environment variable ${variable}, which is not set`,
      );
    return value;
  });
  if (!HEADER_VALUE.test(token))
    throw new Error(
      `connector ${def.name}: source.token has a space, a line break or a character HTTP headers cannot carry`,
    );
  return token;
}

/** The search criteria of one page; an incremental run asks only for records past the watermark, in cursor order. */
function buildCriteria(source: DciSourceDefinition, since: string | null, page: number): Json {
  let query = source.query;
  const sort: Json[] = [];
  if (source.cursor_attribute !== undefined) {
    sort.push({ attribute_name: source.cursor_attribute, sort_order: 'asc' });
    if (since !== null) {
      const after = {
        expression1: { attribute_name: source.cursor_attribute, operator: 'gt', attribute_value: since },
      };
      query = [...(Array.isArray(query) ? (query as unknown[]) : []), after];
    }
  }
  return {
    query_type: source.query_type,
    query,
    ...(source.response_entity === undefined ? {} : { response_entity: source.response_entity }),
    ...(sort.length > 0 ? { sort } : {}),
    pagination: { page_size: source.page_size, page_number: page },
  };
}

async function* readDci(
  def: DciConnectorDefinition,
  token: string,
  since: string | null,
  closing: AbortSignal,
): AsyncGenerator<SourceRecord> {
  const source = def.source;
  const url = `${source.url.replace(/\/+$/, '')}/registry/sync/search`;
  for (let page = 1; ; page++) {
    const body = {
      header: {
        version: '1.0.0',
        message_id: randomUUID(),
        message_ts: new Date().toISOString(),
        action: 'search',
        sender_id: 'registry-hub',
        receiver_id: new URL(source.url).host,
        total_count: 1,
        is_msg_encrypted: false,
      },
      message: {
        transaction_id: randomUUID(),
        search_request: [
          {
            reference_id: `page-${page}`,
            timestamp: new Date().toISOString(),
            search_criteria: buildCriteria(source, since, page),
          },
        ],
      },
    };
    const fail = (reason: string, cause?: unknown) =>
      new Error(`connector ${def.name}: POST ${url} (page ${page}) ${reason}`, { cause });
    let response: Response;
    try {
      response = await fetch(url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          authorization: `Bearer ${token}`,
        },
        body: JSON.stringify(body),
        signal: AbortSignal.any([closing, AbortSignal.timeout(source.timeout_ms)]),
      });
    } catch (err) {
      throw fail(`failed: ${err instanceof Error ? err.message : String(err)}`, err);
    }
    const text = await response.text();
    let answer: unknown;
    try {
      answer = JSON.parse(text);
    } catch (err) {
      throw fail(`returned status ${response.status}: the body is not JSON`, err);
    }
    if (!response.ok) throw fail(`returned status ${response.status}: ${describeDciError(answer)}`);
    const { records, total } = readPage(answer, fail);
    yield* records.map(flattenRecord);
    if (records.length < source.page_size || page * source.page_size >= total) return;
  }
}

function describeDciError(answer: unknown): string {
  if (isObject(answer) && Array.isArray(answer.errors) && isObject(answer.errors[0])) {
    return `${String(answer.errors[0].code)} ${String(answer.errors[0].message)}`;
  }
  return 'not a success status';
}

/** The records of the one search_response item; a rejected item stops the run with its reason. */
function readPage(answer: unknown, fail: (reason: string) => Error): { records: Json[]; total: number } {
  const message = isObject(answer) ? answer.message : undefined;
  const items = isObject(message) ? message.search_response : undefined;
  const item = Array.isArray(items) ? (items[0] as unknown) : undefined;
  if (!isObject(item)) throw fail('answered without a search_response item');
  if (item.status !== 'succ')
    throw fail(
      `rejected the search: ${String(item.status_reason_code)} ${typeof item.status_reason_message === 'string' ? item.status_reason_message : ''}`.trim(),
    );
  const data = isObject(item.data) ? item.data.reg_records : undefined;
  // Social registries list the records; registry_core's reg_records is an object, a JSON-LD set or one record.
  const records = Array.isArray(data)
    ? data
    : isObject(data)
      ? Array.isArray(data['@graph'])
        ? data['@graph']
        : [data]
      : [];
  if (!records.every(isObject)) throw fail('returned a record that is not an object');
  const total =
    isObject(item.pagination) && typeof item.pagination.total_count === 'number'
      ? item.pagination.total_count
      : Number.POSITIVE_INFINITY;
  return { records: records, total };
}

/** {name: {given_name}} → {"name.given_name"}; lists by position: identifiers.0.identifier_value. */
export function flattenRecord(record: Json): SourceRecord {
  const flat: SourceRecord = {};
  const walk = (value: unknown, prefix: string) => {
    if (Array.isArray(value)) value.forEach((v, i) => walk(v, `${prefix}.${i}`));
    else if (isObject(value))
      for (const [k, v] of Object.entries(value)) walk(v, prefix === '' ? k : `${prefix}.${k}`);
    else flat[prefix] = value;
  };
  walk(record, '');
  return flat;
}
