import { Router } from 'express';
import type { AppContext } from '../context.ts';
import { buildOpenApi } from '../services/openapi-service.ts';
import { callerOf } from './authenticate.ts';

export function buildOpenApiRoutes(ctx: AppContext): Router {
  const router = Router();
  router.get('/api/v1/openapi.json', async (req, res) => {
    res.json(await buildOpenApi(ctx, callerOf(req), `${req.protocol}://${req.get('host') ?? 'localhost'}`));
  });
  return router;
}
