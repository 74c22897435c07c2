import { Router } from 'express';
import type { AppContext } from '../context.ts';
import { fetchPerson } from '../services/person-service.ts';
import { callerOf } from './authenticate.ts';

export function buildPersonRoutes(ctx: AppContext): Router {
  const router = Router();
  router.get('/api/v1/persons/:nationalId', async (req, res) => {
    res.json(await fetchPerson(ctx, callerOf(req), req.params.nationalId));
  });
  return router;
}
