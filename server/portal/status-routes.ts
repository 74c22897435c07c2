import { Router } from 'express';
import type { AppContext } from '../context.ts';
import { checkWarehouseHealth, fetchPublicStatus } from '../services/warehouse-status.ts';
import { loadLocale, pickLanguage } from './locale.ts';

/**
 * The public pages: health for monitors, the API explorer, and a plain status page. None of
 * them shows where the warehouse is, how many rows it holds or what an error said: that is
 * for signed-in operators.
 */
export function buildStatusRoutes(ctx: AppContext): Router {
  const router = Router();
  router.get('/healthz', async (_req, res) => {
    const health = await checkWarehouseHealth(ctx);
    res.status(health.status === 'ok' ? 200 : 503).json(health);
  });
  router.get('/api', (req, res) => {
    const lang = pickLanguage(req.query.lang, req.headers['accept-language']);
    res.render('pages/api-explorer', { t: loadLocale(lang), lang });
  });
  // `/` is the portal's home after sign-in; the public status page lives beside it.
  router.get('/status', async (req, res) => {
    const lang = pickLanguage(req.query.lang, req.headers['accept-language']);
    const status = await fetchPublicStatus(ctx);
    res
      .status(status.status === 'ok' ? 200 : 503)
      .render('pages/status-overview', { status, t: loadLocale(lang), lang });
  });
  return router;
}
