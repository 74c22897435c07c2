import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { parseInput } from '../http/validate.ts';
import { listRunnableQueries, runSavedQuery } from '../services/query-service.ts';
import { callerOf } from './authenticate.ts';

/** A saved query's run; the run's own path (frequent-calls-path.ts) reads it by the same schema. */
export const queryRunRequest = z
  .object({
    params: z.record(z.string(), z.unknown()).optional(),
    page: z.number().int().min(1).optional(),
    page_size: z.number().int().min(1).max(1000).optional(),
    next: z.string().min(1).max(4096).optional(),
  })
  .strict();

export function buildQueryRoutes(ctx: AppContext): Router {
  const router = Router();
  router.get('/api/v1/queries', async (req, res) => {
    res.json({ queries: await listRunnableQueries(ctx, callerOf(req)) });
  });
  router.post('/api/v1/queries/:name', async (req, res) => {
    const body = parseInput(queryRunRequest, req.body ?? {}, 'query run request');
    res.json(await runSavedQuery(ctx, callerOf(req), req.params.name, body));
  });
  return router;
}
