import { randomUUID } from 'node:crypto';
import type { Clock } from '../../warehouse/core/clock.ts';
import { buildSignature } from './dci-signature.ts';
import type { DciSigningKey } from './dci-signing-key.ts';

const CALLBACK_TIMEOUT_MS = 15000;
/** The hub's sender_id in the messages it signs. */
export const HUB_SENDER_ID = 'registry-hub';

type Json = Record<string, unknown>;

/** A signed envelope from the hub: the callback header of the YAML (status, counts) and the message. */
export function buildSignedEnvelope(input: {
  key: DciSigningKey;
  clock: Clock;
  action: string;
  receiverId: string;
  message: Json;
  status?: 'rcvd' | 'pdng' | 'succ' | 'rjct';
  totalCount?: number;
  completedCount?: number;
}): { signature: string; header: Json; message: Json } {
  const now = input.clock.now();
  const header: Json = {
    version: '1.0.0',
    message_id: randomUUID(),
    message_ts: now.toISOString(),
    action: input.action,
    status: input.status ?? 'succ',
    total_count: input.totalCount ?? 1,
    completed_count: input.completedCount ?? input.totalCount ?? 1,
    sender_id: HUB_SENDER_ID,
    receiver_id: input.receiverId,
    is_msg_encrypted: false,
  };
  const signature = buildSignature({
    key: input.key.privateKey,
    kid: input.key.kid,
    senderId: HUB_SENDER_ID,
    header,
    message: input.message,
    now,
  });
  return { signature, header, message: input.message };
}

/** Why a sender_uri cannot receive callbacks, or null. */
export function explainCallbackUriProblem(uri: string | null): string | null {
  if (uri === null) return 'header.sender_uri: required for asynchronous requests (the callback URL)';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    return 'header.sender_uri: not a URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:')
    return 'header.sender_uri: must be an http or https URL';
  if (url.username !== '' || url.password !== '') return 'header.sender_uri: must not carry credentials';
  return null;
}

/** POSTs an envelope to a callback URL; a refused or failed delivery throws with the status. */
export async function sendCallback(uri: string, envelope: Json): Promise<void> {
  const response = await fetch(uri, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(envelope),
    signal: AbortSignal.timeout(CALLBACK_TIMEOUT_MS),
    redirect: 'error',
  });
  await response.body?.cancel();
  if (!response.ok) throw new Error(`callback ${uri} answered ${response.status}`);
}
