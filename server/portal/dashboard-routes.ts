import { Router } from 'express';
import type { AppContext } from '../context.ts';
import { fetchDashboard } from '../services/dashboard-service.ts';
import { requireUser } from './portal-access.ts';

export function buildDashboardRoutes(ctx: AppContext): Router {
  const router = Router();
  router.get('/', async (req, res) => {
    const dashboard = await fetchDashboard(ctx, requireUser(req));
    const peak = Math.max(1, ...dashboard.apiCalls.map((d) => d.calls));
    res.render('pages/home', { title: 'nav_home', dashboard, peak });
  });
  return router;
}
