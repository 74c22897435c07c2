import assert from 'node:assert/strict';
import type { ApiResponse } from '../../support/api-hub.ts';
import type { DciHub } from './dci-hub.ts';
import { assertValid, requestSchema, responseSchema } from './dci-schemas.ts';

type Json = Record<string, unknown>;
export type Registry = 'social' | 'crvs';

/** Sends a request that must itself be valid against the registry's YAML; checks the answer against it too. */
export async function sendValid(
  hub: DciHub,
  registry: Registry,
  apiPath: string,
  body: Json,
  token: string,
): Promise<ApiResponse> {
  assertValid(requestSchema(registry, apiPath), body, `request to ${apiPath}`);
  return sendChecked(hub, registry, apiPath, body, token);
}

/** Sends any body (bad ones included) and checks that the answer, whatever its status, is what the YAML allows, and not to be stored. */
export async function sendChecked(
  hub: DciHub,
  registry: Registry,
  apiPath: string,
  body: unknown,
  token?: string,
): Promise<ApiResponse> {
  const res = await hub.call(`/dci/${registry}${apiPath}`, body, token);
  const answer = `${res.status} answer of ${apiPath}`;
  assert.match(res.headers.get('content-type') ?? '', /^application\/json/, res.text);
  // Answers carry personal data (or say whom the registry holds): no browser or proxy keeps one.
  assert.equal(res.headers.get('cache-control'), 'no-store', answer);
  assert.equal(res.headers.get('etag'), null, answer);
  assertValid(responseSchema(registry, apiPath, res.status), res.body, answer);
  return res;
}

/** The error code of a refused message, from the acknowledgement or the HTTP error list (both are sent). */
export function assertDciError(res: ApiResponse, status: number, code: string): string {
  assert.equal(res.status, status, res.text);
  const body = res.body as {
    errors?: Array<{ code: string; message: string }>;
    message?: { ack_status?: string; error?: { code: string } };
  };
  assert.equal(body.errors?.[0]?.code, code, res.text);
  if (body.message !== undefined) {
    assert.equal(body.message.ack_status, 'ERR', res.text);
    assert.equal(body.message.error?.code, code, res.text);
  }
  assert.doesNotMatch(res.text, /\n\s+at |node_modules|\/tmp\//, 'no stack trace or path');
  return body.errors[0].message;
}

export interface SearchItem {
  reference_id: string;
  status: string;
  status_reason_code?: string;
  data?: { reg_records: Json[] | { '@graph': Json[] }; reg_record_type?: string };
  pagination?: { page_size: number; page_number: number; total_count: number };
}

/** The items of an on-search message (sync answer or callback). */
export function searchItems(body: unknown): SearchItem[] {
  return (body as { message: { search_response: SearchItem[] } }).message.search_response;
}

/** The records of a succeeded item: social lists them, CRVS holds them in the object's @graph. */
export function recordsOf(item: SearchItem | undefined): Json[] {
  assert.ok(item !== undefined, 'no search_response item');
  assert.equal(item.status, 'succ', JSON.stringify(item));
  const records = item.data?.reg_records;
  assert.ok(records !== undefined);
  return Array.isArray(records) ? records : records['@graph'];
}
