import { Router } from 'express';
import { z } from 'zod';
import type { AppContext } from '../context.ts';
import { parseInput } from '../http/validate.ts';
import { fetchPerson, fetchPersonBatch, MAX_BATCH_IDS } from '../services/person-service.ts';
import { callerOf } from './authenticate.ts';

/** The batch's body; the batch's own path (frequent-calls-path.ts) reads it by the same schema. */
export const batchRequest = z
  .object({ national_ids: z.array(z.string()).min(1).max(MAX_BATCH_IDS) })
  .strict();

export function buildPersonRoutes(ctx: AppContext): Router {
  const router = Router();
  router.get('/api/v1/persons/:nationalId', async (req, res) => {
    res.json(await fetchPerson(ctx, callerOf(req), req.params.nationalId));
  });
  // The colon is part of the path (a custom method, as in Google's API design guide), not a parameter.
  router.post('/api/v1/persons\\:batch', async (req, res) => {
    const body = parseInput(batchRequest, req.body ?? {}, 'batch request');
    res.json(await fetchPersonBatch(ctx, callerOf(req), body.national_ids));
  });
  return router;
}
