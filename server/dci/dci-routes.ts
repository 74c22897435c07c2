import { createPublicKey, randomUUID } from 'node:crypto';
import { Router, type ErrorRequestHandler, type Request, type Response } from 'express';
import { HubError, readRetryAfter } from '../../warehouse/core/errors.ts';
import type { ApiState } from '../api/api-state.ts';
import { refuseTokenMethod, resolveTokenError, setTokenErrorHeaders } from '../api/token-routes.ts';
import type { AppContext } from '../context.ts';
import { authenticateCaller, issueToken, normalizeIp, type ApiCaller } from '../services/token-service.ts';
import { DciError, badRequest } from './dci-error.ts';
import { parseEnvelope, readTransactionId, type DciEnvelope } from './dci-envelope.ts';
import { DCI_REGISTRIES, type DciRegistry } from './dci-mapping.ts';
import { explainSignatureProblem, findSignatureValue } from './dci-signature.ts';
import { DciState } from './dci-state.ts';
import { saveReceivedMessage } from './received-messages.ts';
import { runSearchRequest } from './run-dci-search.ts';
import {
  buildSignedEnvelope,
  explainCallbackUriProblem,
  HUB_SENDER_ID,
  sendCallback,
} from './send-callback.ts';
import { subscribeItem, unsubscribe } from './dci-subscriptions.ts';
import { buildTxnStatus } from './txn-status.ts';
import { saveTransaction } from './dci-transactions.ts';

type Json = Record<string, unknown>;
const CALLER = Symbol('dci-caller');

/** The receiving endpoints of each registry's YAML: callbacks a DCI peer sends to the hub. */
const RECEIVERS: Record<DciRegistry, Record<string, string>> = {
  social: { '/registry/on-search': 'on-search', '/registry/txn/on-status': 'txn-on-status' },
  crvs: {
    '/registry/on-search': 'on-search',
    '/registry/on-subscribe': 'on-subscribe',
    '/registry/on-unsubscribe': 'on-unsubscribe',
    '/registry/txn/on-status': 'txn-on-status',
    '/registry/notify': 'notify',
  },
};

function callerOf(req: Request): ApiCaller {
  const caller = (req as Request & { [CALLER]?: ApiCaller })[CALLER];
  if (caller === undefined) throw new Error('DCI route is not behind the bearer check');
  return caller;
}

/** The acknowledgement of the YAML's Response: ACK now, the answer follows by callback. */
function buildAck(ctx: AppContext, correlationId: string): Json {
  return {
    message: { ack_status: 'ACK', timestamp: ctx.clock.now().toISOString(), correlation_id: correlationId },
  };
}

/** The authz API's token endpoint: the same issuer as /api/v1/token. */
const DCI_TOKEN_PATH = '/dci/oauth2/client/token';

/**
 * The DCI APIs: the social registry under /dci/social, CRVS under /dci/crvs (each with its
 * YAML's paths), the authz token endpoint and the JWKS. Requests carry a bearer token of an
 * API client; the client's entity grants decide what every search returns.
 */
export function buildDciRoutes(ctx: AppContext, api: ApiState): Router {
  const state = new DciState(ctx);
  const router = Router();

  router.post(DCI_TOKEN_PATH, async (req, res) => {
    // The same issuer as /api/v1/token: Basic, JSON or form credentials, throttled and audited alike.
    const token = await issueToken(ctx, {
      ip: normalizeIp(req.socket.remoteAddress),
      body: req.body as unknown,
      authorization: req.headers.authorization,
    });
    // Cache-Control: no-store comes with every DCI answer (server/app.ts); RFC 6749 §5.1 adds Pragma.
    res.setHeader('Pragma', 'no-cache');
    // The authz YAML (OAuth2ClientTokenResponse) writes expires_in as a string.
    res.json({ ...token, expires_in: String(token.expires_in) });
  });
  router.all(DCI_TOKEN_PATH, refuseTokenMethod(DCI_TOKEN_PATH));

  router.get('/.well-known/jwks.json', async (_req, res) => {
    const key = await state.fetchKey();
    res.json({ keys: [key.jwk] });
  });

  for (const registry of DCI_REGISTRIES)
    router.use(`/dci/${registry}`, buildRegistryRouter(ctx, api, state, registry));
  router.use('/dci', (req, _res, next) =>
    next(new DciError('err.request.not_found', 404, `no DCI endpoint ${req.method} ${req.path}`)),
  );
  return router;
}

function buildRegistryRouter(ctx: AppContext, api: ApiState, state: DciState, registry: DciRegistry): Router {
  const router = Router();
  const target = (req: Request) => `POST /dci/${registry}${req.path}`;

  router.use(async (req, _res, next) => {
    let caller: ApiCaller;
    try {
      caller = await authenticateCaller(
        ctx,
        req.headers.authorization,
        normalizeIp(req.socket.remoteAddress),
      );
    } catch (err) {
      if (err instanceof HubError && err.status === 401)
        throw new DciError('err.request.unauthorized', 401, err.message);
      if (err instanceof HubError && err.status === 403)
        throw new DciError('err.request.forbidden', 403, err.message);
      throw err;
    }
    try {
      await api.limiter.consume(caller.clientId, caller.limits);
    } catch (err) {
      if (err instanceof HubError && err.status === 429)
        throw new DciError('err.request.too_many_requests', 429, err.message, readRetryAfter(err));
      throw err;
    }
    (req as Request & { [CALLER]?: ApiCaller })[CALLER] = caller;
    next();
  });

  /** Reads the envelope and checks the signature against the sender client's registered key. */
  const readRequest = async (req: Request, actions: string[], callback = false): Promise<DciEnvelope> => {
    const envelope = parseEnvelope(req.body, { actions, callback });
    await verifySignature(ctx, callerOf(req), envelope);
    return envelope;
  };

  /** Runs the search message and records its transaction: the same for the sync and async paths. */
  const searchAndSave = async (req: Request, envelope: DciEnvelope, correlationId: string) => {
    const caller = callerOf(req);
    const message = await runSearchRequest(ctx, caller, {
      mapping: state.mapping,
      registry,
      message: envelope.message,
      target: target(req),
      correlationId,
    });
    await saveSearchTransaction(ctx, registry, caller, correlationId, message);
    return { message, totalCount: message.search_response.length };
  };

  router.post('/registry/sync/search', async (req, res) => {
    const envelope = await readRequest(req, ['search']);
    assertList(envelope.message, 'search_request');
    const { message, totalCount } = await searchAndSave(req, envelope, randomUUID());
    await sendEnvelope(res, state, ctx, {
      action: 'on-search',
      receiverId: envelope.header.sender_id,
      message,
      totalCount,
    });
  });

  router.post('/registry/search', async (req, res) => {
    const envelope = await readRequest(req, ['search']);
    assertList(envelope.message, 'search_request');
    const uri = assertCallbackUri(envelope);
    const caller = callerOf(req);
    const correlationId = randomUUID();
    await saveTransaction(ctx, {
      correlationId,
      registry,
      clientId: caller.clientId,
      transactionId: readTransactionId(envelope.message),
      txnType: 'search',
      referenceIds: readReferenceIds(envelope.message.search_request),
      status: 'pdng',
      response: null,
    });
    acknowledgeThenCallBack(res, ctx, state, {
      uri,
      correlationId,
      action: 'on-search',
      receiverId: envelope.header.sender_id,
      build: () => searchAndSave(req, envelope, correlationId),
    });
  });

  router.post('/registry/sync/txn/status', async (req, res) => {
    const envelope = await readRequest(req, ['txn-status']);
    const message = await buildTxnStatus(ctx, callerOf(req), {
      registry,
      message: envelope.message,
      correlationId: randomUUID(),
    });
    await sendEnvelope(res, state, ctx, {
      action: 'txn-on-status',
      receiverId: envelope.header.sender_id,
      message,
    });
  });

  router.post('/registry/txn/status', async (req, res) => {
    const envelope = await readRequest(req, ['txn-status']);
    const uri = assertCallbackUri(envelope);
    const correlationId = randomUUID();
    const message = await buildTxnStatus(ctx, callerOf(req), {
      registry,
      message: envelope.message,
      correlationId,
    });
    acknowledgeThenCallBack(res, ctx, state, {
      uri,
      correlationId,
      action: 'txn-on-status',
      receiverId: envelope.header.sender_id,
      build: () => Promise.resolve({ message }),
    });
  });

  if (registry === 'crvs') {
    router.post('/registry/subscribe', async (req, res) => {
      const envelope = await readRequest(req, ['subscribe']);
      assertList(envelope.message, 'subscribe_request');
      const uri = assertCallbackUri(envelope);
      const caller = callerOf(req);
      const correlationId = randomUUID();
      const transactionId = readTransactionId(envelope.message);
      const referenceIds = readReferenceIds(envelope.message.subscribe_request);
      const record = { correlationId, registry, clientId: caller.clientId, transactionId };
      await saveTransaction(ctx, {
        ...record,
        txnType: 'subscribe',
        referenceIds,
        status: 'pdng',
        response: null,
      });
      acknowledgeThenCallBack(res, ctx, state, {
        uri,
        correlationId,
        action: 'on-subscribe',
        receiverId: envelope.header.sender_id,
        build: async () => {
          const items: Json[] = [];
          for (const item of envelope.message.subscribe_request as unknown[])
            items.push(await subscribeItem(ctx, state, caller, { registry, item, senderUri: uri }));
          const message = {
            transaction_id: transactionId,
            correlation_id: correlationId,
            subscribe_response: items,
          };
          const codes = items.flatMap((i) =>
            Array.isArray(i.subscriptions) ? (i.subscriptions as Json[]).map((s) => String(s.code)) : [],
          );
          await saveTransaction(ctx, {
            ...record,
            txnType: 'subscribe',
            referenceIds: [...referenceIds, ...codes],
            status: 'succ',
            response: message,
          });
          return { message, totalCount: items.length };
        },
      });
    });

    router.post('/registry/unsubscribe', async (req, res) => {
      const envelope = await readRequest(req, ['unsubscribe']);
      const codes = envelope.message.subscription_codes ?? envelope.message.sunscription_codes;
      if (
        !Array.isArray(codes) ||
        codes.length === 0 ||
        codes.length > 100 ||
        !codes.every((c) => typeof c === 'string' && c.length <= 99)
      ) {
        throw badRequest('message.subscription_codes: a list of 1 to 100 subscription codes');
      }
      const uri = assertCallbackUri(envelope);
      const caller = callerOf(req);
      const correlationId = randomUUID();
      const transactionId = readTransactionId(envelope.message);
      acknowledgeThenCallBack(res, ctx, state, {
        uri,
        correlationId,
        action: 'on-unsubscribe',
        receiverId: envelope.header.sender_id,
        build: async () => {
          const outcome = await unsubscribe(ctx, caller, { registry, codes: codes as string[] });
          const message = { transaction_id: transactionId, correlation_id: correlationId, ...outcome };
          await saveTransaction(ctx, {
            correlationId,
            registry,
            clientId: caller.clientId,
            transactionId,
            txnType: 'unsubscribe',
            referenceIds: codes as string[],
            status: String(outcome.status),
            response: message,
          });
          return { message };
        },
      });
    });
  }

  for (const [path, action] of Object.entries(RECEIVERS[registry])) {
    router.post(path, async (req, res) => {
      const callback = action !== 'on-subscribe' && action !== 'on-unsubscribe';
      const envelope = await readRequest(req, [action], callback);
      const correlationId =
        typeof envelope.message.correlation_id === 'string' && envelope.message.correlation_id !== ''
          ? envelope.message.correlation_id.slice(0, 64)
          : randomUUID();
      await saveReceivedMessage(ctx, { registry, caller: callerOf(req), action, envelope, correlationId });
      res.json(buildAck(ctx, correlationId));
    });
  }
  return router;
}

function assertList(message: Json, field: string): void {
  const list = message[field];
  if (!Array.isArray(list)) throw badRequest(`message.${field}: required, a list`);
  if (list.length > 100)
    throw new DciError('err.request.bad', 400, `message.${field}: at most 100 items per message`);
}

function readReferenceIds(items: unknown): string[] {
  if (!Array.isArray(items)) return [];
  return items.flatMap((i: unknown) =>
    typeof i === 'object' && i !== null && 'reference_id' in i ? [String((i as Json).reference_id)] : [],
  );
}

function assertCallbackUri(envelope: DciEnvelope): string {
  const problem = explainCallbackUriProblem(envelope.header.sender_uri);
  if (problem !== null) throw new DciError('err.sender_uri.invalid', 400, problem);
  return envelope.header.sender_uri!;
}

async function saveSearchTransaction(
  ctx: AppContext,
  registry: DciRegistry,
  caller: ApiCaller,
  correlationId: string,
  message: { transaction_id: string; search_response: Array<{ reference_id: string }> },
): Promise<void> {
  await saveTransaction(ctx, {
    correlationId,
    registry,
    clientId: caller.clientId,
    transactionId: message.transaction_id,
    txnType: 'search',
    referenceIds: message.search_response.map((r) => r.reference_id),
    status: 'succ',
    response: message,
  });
}

/**
 * The asynchronous DCI pattern: ACK now, then build the answer off the request and send it,
 * signed, to the caller's sender_uri under the same correlation id.
 */
function acknowledgeThenCallBack(
  res: Response,
  ctx: AppContext,
  state: DciState,
  input: {
    uri: string;
    correlationId: string;
    action: string;
    receiverId: string;
    build: () => Promise<{ message: Json; totalCount?: number }>;
  },
): void {
  res.json(buildAck(ctx, input.correlationId));
  state.runLater(async () => {
    const { message, totalCount } = await input.build();
    const key = await state.fetchKey();
    await sendCallback(
      input.uri,
      buildSignedEnvelope({
        key,
        clock: ctx.clock,
        action: input.action,
        receiverId: input.receiverId,
        message,
        totalCount,
      }),
    );
  });
}

async function sendEnvelope(
  res: Response,
  state: DciState,
  ctx: AppContext,
  input: { action: string; receiverId: string; message: Json; totalCount?: number },
): Promise<void> {
  const key = await state.fetchKey();
  res.json(buildSignedEnvelope({ key, clock: ctx.clock, ...input }));
}

/**
 * A client with a registered key must sign; a signature from any sender must verify. Values
 * listed in HUB_DCI_PLACEHOLDER_SIGNATURES count as no signature (development peers only).
 */
async function verifySignature(ctx: AppContext, caller: ApiCaller, envelope: DciEnvelope): Promise<void> {
  const placeholders = ctx.config.dci.placeholderSignatures;
  const text = envelope.signature;
  const isPlaceholder =
    text !== null &&
    (placeholders.includes(text.trim()) || placeholders.includes(findSignatureValue(text) ?? '\u0000'));
  const row = await ctx
    .knex('hub_clients')
    .where({ client_id: caller.clientId })
    .first<{ dci_public_key: string | null } | undefined>('dci_public_key');
  const pem = row?.dci_public_key ?? null;
  if (text === null || isPlaceholder) {
    if (pem !== null)
      throw new DciError(
        'err.signature.missing',
        401,
        `client ${caller.clientId} must sign its messages (Ed25519, DCI signature format)`,
      );
    return;
  }
  if (pem === null)
    throw new DciError(
      'err.signature.invalid',
      401,
      `client ${caller.clientId} has no registered public key to verify the signature with`,
    );
  const problem = explainSignatureProblem({
    text,
    key: createPublicKey(pem),
    header: envelope.raw.header,
    message: envelope.raw.message,
    now: ctx.clock.now(),
  });
  if (problem !== null) throw new DciError('err.signature.invalid', 401, problem);
}

/** DCI errors as the YAML has them: the acknowledgement with ack_status ERR, and the HTTP error list. */
export function buildDciErrorHandler(ctx: AppContext): ErrorRequestHandler {
  return async (err: unknown, req, res, next) => {
    if (!req.path.startsWith('/dci/') && req.path !== '/.well-known/jwks.json') {
      next(err);
      return;
    }
    if (req.path === DCI_TOKEN_PATH && !(err instanceof DciError)) {
      // The issuer's refusals, throttled and audited as at /api/v1/token, malformed bodies included.
      const refused = await resolveTokenError(ctx, err, req, res);
      setTokenErrorHeaders(res, refused);
      res.status(refused.status).json({
        error: refused.code,
        error_description: refused.message,
        errors: [{ code: refused.code, message: refused.message }],
      });
      return;
    }
    let error: DciError;
    if (err instanceof DciError) error = err;
    else if (err instanceof HubError)
      error = new DciError(
        err.status === 401 ? 'err.request.unauthorized' : 'err.request.bad',
        err.status,
        err.message,
      );
    else if (
      typeof err === 'object' &&
      err !== null &&
      (err as { type?: unknown }).type === 'entity.parse.failed'
    )
      error = badRequest('the body is not valid JSON');
    else if (
      typeof err === 'object' &&
      err !== null &&
      typeof (err as { status?: unknown }).status === 'number' &&
      (err as { status: number }).status < 500
    ) {
      error = badRequest((err as Error).message);
    } else {
      const requestId = String(res.getHeader('x-request-id') ?? '');
      ctx.logger.error({ err, requestId, path: req.path }, 'unhandled DCI error');
      error = new DciError('err.service.unavailable', 500, `internal error (request ${requestId})`);
    }
    if (error.retryAfter !== undefined) res.setHeader('Retry-After', String(error.retryAfter));
    const timestamp = ctx.clock.now().toISOString();
    const errors = [{ code: error.code, message: error.message }];
    if (req.path.includes('/registry/sync/')) {
      // The sync endpoints answer with an envelope: a rejected header, no message.
      const action = req.path.endsWith('/search') ? 'on-search' : 'txn-on-status';
      const header = {
        version: '1.0.0',
        message_id: randomUUID(),
        message_ts: timestamp,
        action,
        status: 'rjct',
        status_reason_message: `${error.code}: ${error.message}`.slice(0, 999),
        total_count: 0,
        completed_count: 0,
        sender_id: HUB_SENDER_ID,
        is_msg_encrypted: false,
      };
      res.status(error.status).json({ header, errors });
      return;
    }
    res.status(error.status).json({
      message: {
        ack_status: 'ERR',
        timestamp,
        error: { code: error.code, message: error.message },
        correlation_id: randomUUID(),
      },
      errors,
    });
  };
}
