import { z } from 'zod';
import { badRequest, DciError } from './dci-error.ts';

/**
 * The envelope as the hub reads it. The checks are those the standard's schemas make on what
 * the hub needs (header fields, message present, transaction_id at most 99 characters), but
 * lenient where the DCI sample messages are (total_count as "1", an empty sender_uri, empty
 * consent), so that a message shaped like the samples is answered, not refused.
 */
export interface DciEnvelope {
  signature: string | null;
  header: DciHeader;
  message: Record<string, unknown>;
  /** The body as sent, for signature verification. */
  raw: { header: unknown; message: unknown };
}

export interface DciHeader {
  version: string;
  message_id: string;
  message_ts: string;
  action: string;
  sender_id: string;
  sender_uri: string | null;
  receiver_id: string | null;
  status: string | null;
}

const text = z.union([z.string(), z.number()]).transform(String);
const timestamp = z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'must be an ISO 8601 date-time');

const requestHeader = z.object({
  version: z.string().default('1.0.0'),
  message_id: text.pipe(z.string().min(1).max(200)),
  message_ts: timestamp,
  action: z.string().min(1),
  sender_id: text.pipe(z.string().min(1).max(200)),
  sender_uri: z.string().optional(),
  receiver_id: z.string().optional(),
  total_count: z.union([z.number().int().min(0), z.string().regex(/^\d*$/)]).optional(),
  is_msg_encrypted: z.union([z.boolean(), z.string()]).optional(),
  status: z.string().optional(),
});

const callbackHeader = requestHeader.extend({
  sender_id: text.pipe(z.string().max(200)).optional(),
  status: z.enum(['rcvd', 'pdng', 'succ', 'rjct']),
});

function describeIssues(error: z.ZodError, prefix: string): string {
  return error.issues.map((i) => `${[prefix, ...i.path.map(String)].join('.')}: ${i.message}`).join('; ');
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Reads the envelope of a request (search, subscribe, ...) or of a callback (on-search, notify, ...). */
export function parseEnvelope(
  body: unknown,
  expected: { actions: string[]; callback: boolean },
): DciEnvelope {
  if (!isObject(body)) throw badRequest('the body must be a JSON object with signature, header and message');
  const parsed = (expected.callback ? callbackHeader : requestHeader).safeParse(body.header);
  if (body.header === undefined) throw badRequest('header: required');
  if (!parsed.success) throw badRequest(describeIssues(parsed.error, 'header'));
  const header = parsed.data;
  if (!expected.actions.includes(header.action)) {
    throw badRequest(
      `header.action: must be ${expected.actions.join(' or ')} on this endpoint, not ${JSON.stringify(header.action)}`,
    );
  }
  if (header.is_msg_encrypted === true || header.is_msg_encrypted === 'true') {
    throw new DciError(
      'err.encryption.invalid',
      400,
      'encrypted messages are not supported by this registry: send is_msg_encrypted false',
    );
  }
  if (body.message === undefined || body.message === null) throw badRequest('message: required');
  if (!isObject(body.message)) throw badRequest('message: must be an object');
  const transactionId = body.message.transaction_id;
  if (transactionId !== undefined && typeof transactionId !== 'string' && typeof transactionId !== 'number') {
    throw badRequest('message.transaction_id: must be a string');
  }
  if (String(transactionId ?? '').length > 99)
    throw badRequest('message.transaction_id: at most 99 characters');
  if (body.signature !== undefined && body.signature !== null && typeof body.signature !== 'string') {
    throw badRequest('signature: must be a string');
  }
  const senderUri = header.sender_uri?.trim() ?? '';
  return {
    signature: typeof body.signature === 'string' && body.signature.trim() !== '' ? body.signature : null,
    header: {
      version: header.version,
      message_id: header.message_id,
      message_ts: header.message_ts,
      action: header.action,
      sender_id: header.sender_id ?? '',
      sender_uri: senderUri === '' ? null : senderUri,
      receiver_id: header.receiver_id ?? null,
      status: header.status ?? null,
    },
    message: body.message,
    raw: { header: body.header, message: body.message },
  };
}

export function readTransactionId(message: Record<string, unknown>): string {
  const id = message.transaction_id;
  return typeof id === 'string' || typeof id === 'number' ? String(id) : '';
}
