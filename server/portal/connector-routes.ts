import { Router, type Request, type Response } from 'express';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import { ConnectorRunTracker } from '../services/connector-run-tracker.ts';
import {
  describeRunProgress,
  exportRunRejectsCsv,
  fetchConnectorRun,
  fetchConnectorRuns,
  fetchRunRejects,
} from '../services/connector-run-service.ts';
import { assertMayRunConnector, fetchManagedConnectors } from '../services/portal-admin-service.ts';
import type { Messages } from './locale.ts';
import { actorOf, requireRole, requireUser } from './portal-access.ts';

/** How often a run's page reloads itself without JavaScript while the run goes on. */
const REFRESH_SECONDS = 2;

const runPath = (name: string, runId: number) =>
  `/settings/connectors/${encodeURIComponent(name)}/runs/${runId}`;

/**
 * Settings → connectors: the operator's, and each custodian's own. Run now starts the run and
 * answers at once with the run's page, which follows its progress (reloading itself, or polling
 * the run's JSON with the page's script), then lists what the run rejected.
 */
export function buildConnectorRoutes(ctx: AppContext): Router {
  const router = Router();
  const tracker = new ConnectorRunTracker(ctx);
  router.use('/settings/connectors', requireRole('super-admin', 'custodian'));

  router.get('/settings/connectors', async (req, res) => {
    res.render('pages/settings-connectors', {
      title: 'nav_connectors',
      connectors: await fetchManagedConnectors(ctx, actorOf(requireUser(req))),
    });
  });

  const showConnector = async (req: Request, res: Response, problem: HubError | null = null) => {
    const name = String(req.params.name);
    const { connector, runs } = await fetchConnectorRuns(ctx, actorOf(requireUser(req)), name);
    res.status(problem?.status ?? 200).render('pages/settings-connector', {
      title: 'nav_connectors',
      connector,
      runs,
      running: runs.find((r) => r.status === 'running') ?? null,
      problem,
    });
  };
  router.get('/settings/connectors/:name', (req, res) => showConnector(req, res));

  router.post('/settings/connectors/:name/run', async (req, res) => {
    const user = requireUser(req);
    const name = req.params.name;
    await assertMayRunConnector(ctx, actorOf(user), name);
    try {
      const { run_id } = await tracker.start(name, {
        trigger: 'manual',
        actor: user.username,
        full: (req.body as Record<string, unknown>).full === 'yes',
      });
      res.redirect(303, runPath(name, run_id));
    } catch (err) {
      // A run of this connector still going: say so on the connector's page, which links to it.
      if (err instanceof HubError && err.status === 409) return showConnector(req, res, err);
      throw err;
    }
  });

  const readRun = async (req: Request) => {
    const name = String(req.params.name);
    const { connector, run } = await fetchConnectorRun(
      ctx,
      actorOf(requireUser(req)),
      name,
      String(req.params.id),
    );
    return { connector, run, progress: describeRunProgress(name, run, tracker.fetchLiveRun(name, run.id)) };
  };

  router.get('/settings/connectors/:name/runs/:id', async (req, res) => {
    const { connector, run, progress } = await readRun(req);
    res.render('pages/settings-connector-run', {
      title: 'nav_connectors',
      connector,
      run,
      progress,
      rejects: progress.finished ? await fetchRunRejects(ctx, connector.name, run.id) : [],
      refreshSeconds: progress.finished ? null : REFRESH_SECONDS,
    });
  });

  router.get('/settings/connectors/:name/runs/:id/progress.json', async (req, res) => {
    const { progress } = await readRun(req);
    const t = res.locals.t as Messages;
    res.json({
      ...progress,
      phase_text: t[`phase_${progress.phase}`] ?? progress.phase,
      status_text: t[`run_${progress.status}`] ?? progress.status,
    });
  });

  router.get('/settings/connectors/:name/runs/:id/rejects.csv', async (req, res) => {
    const { name, id } = req.params;
    const csv = await exportRunRejectsCsv(ctx, actorOf(requireUser(req)), name, id);
    res.type('text/csv').attachment(`${name}-run-${id}-rejects.csv`).send(csv);
  });

  return router;
}
