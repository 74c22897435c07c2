import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { parseInput } from '../http/validate.ts';
import { issueToken, normalizeIp } from '../services/token-service.ts';
import type { ApiState } from './api-state.ts';

const tokenRequest = z.object({
  grant_type: z.literal('client_credentials'),
  // PostgreSQL refuses text holding U+0000; the id is looked up, so it would fail as a 500.
  client_id: z.string().min(1).max(100).refine((id) => !id.includes('\u0000'), 'must not contain a NUL character'),
  client_secret: z.string().min(1).max(500),
});

export function buildTokenRoutes(ctx: AppContext, state: ApiState): Router {
  const router = Router();
  router.post('/api/v1/token', async (req, res) => {
    const body = parseInput(tokenRequest, req.body ?? {}, 'token request');
    const ip = normalizeIp(req.socket.remoteAddress);
    res.setHeader('Cache-Control', 'no-store');
    res.json(await issueToken(ctx, state.keys, { clientId: body.client_id, clientSecret: body.client_secret, ip }));
  });
  return router;
}
