import { Router } from 'express';
import type { AppContext } from '../context.ts';
import { checkWarehouseHealth, fetchWarehouseStatus } from '../services/warehouse-status.ts';
import { loadLocale, pickLanguage } from './locale.ts';

export function buildStatusRoutes(ctx: AppContext): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    res.json(await checkWarehouseHealth(ctx));
  });
  router.get('/api', (req, res) => {
    const lang = pickLanguage(req.query.lang, req.headers['accept-language']);
    res.render('pages/api-explorer', { t: loadLocale(lang), lang });
  });
  // `/` is the portal's home after sign-in; the public status page lives beside it.
  router.get('/status', async (req, res) => {
    const lang = pickLanguage(req.query.lang, req.headers['accept-language']);
    res.render('pages/status-overview', {
      status: await fetchWarehouseStatus(ctx),
      t: loadLocale(lang),
      lang,
    });
  });
  return router;
}
