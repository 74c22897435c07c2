import { Router, type Request, type Response } from 'express';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import {
  createClient,
  disableClient,
  rotateClientSecret,
  type ClientCredentials,
} from '../services/client-service.ts';
import {
  assertMayCreateClientFor,
  assertMayManageClient,
  createEntity,
  fetchEntityOverview,
  fetchManagedClients,
  updateClientSettings,
} from '../services/portal-admin-service.ts';
import {
  createUser,
  fetchUsers,
  resetUserTotp,
  setUserStatus,
  USER_ROLES,
  type NewUser,
} from '../services/user-service.ts';
import { actorOf, requireRole, requireUser } from './portal-access.ts';

type Body = Record<string, unknown>;
const text = (v: unknown) => (typeof v === 'string' ? v.trim() : '');
const optionalInteger = (v: unknown) => (text(v) === '' ? undefined : Number(text(v)));
const ipList = (v: unknown) =>
  text(v)
    .split(/[\s,]+/)
    .filter((ip) => ip !== '');

/** Renders the screen again with the service's 4xx as a message, so a bad field never loses the page. */
async function renderProblem(
  res: Response,
  err: unknown,
  show: (problem: HubError) => Promise<void>,
): Promise<void> {
  if (err instanceof HubError && err.status < 500 && err.status !== 403) return show(err);
  throw err;
}

export function buildSettingsRoutes(ctx: AppContext): Router {
  const router = Router();

  // API clients: a super admin for every entity, an entity admin for its own.
  router.use('/settings/clients', requireRole('super-admin', 'entity-admin'));
  const showClients = async (
    req: Request,
    res: Response,
    extra: { created?: ClientCredentials; problem?: HubError } = {},
  ) => {
    const user = requireUser(req);
    res.status(extra.problem?.status ?? 200).render('pages/settings-clients', {
      title: 'nav_clients',
      clients: await fetchManagedClients(ctx, actorOf(user)),
      created: extra.created ?? null,
      problem: extra.problem ?? null,
    });
  };
  router.get('/settings/clients', (req, res) => showClients(req, res));
  router.post('/settings/clients', async (req, res) => {
    const user = requireUser(req);
    const body = req.body as Body;
    const entity = user.role === 'super-admin' ? text(body.entity) || user.entity : user.entity;
    try {
      assertMayCreateClientFor(actorOf(user), entity);
      const created = await createClient(
        ctx,
        {
          entity,
          name: text(body.name),
          ratePerMinute: optionalInteger(body.rate_per_minute),
          ratePerDay: optionalInteger(body.rate_per_day),
          allowedIps: ipList(body.allowed_ips),
        },
        user.username,
      );
      await showClients(req, res, { created });
    } catch (err) {
      await renderProblem(res, err, (problem) => showClients(req, res, { problem }));
    }
  });
  router.post('/settings/clients/:id/:change', async (req, res) => {
    const user = requireUser(req);
    const { id, change } = req.params;
    const body = req.body as Body;
    await assertMayManageClient(ctx, actorOf(user), id);
    try {
      if (change === 'rotate')
        return await showClients(req, res, { created: await rotateClientSecret(ctx, id, user.username) });
      if (change === 'disable') await disableClient(ctx, id, user.username);
      else if (change === 'enable') await updateClientSettings(ctx, actorOf(user), id, { status: 'active' });
      else if (change === 'limits')
        await updateClientSettings(ctx, actorOf(user), id, {
          ratePerMinute: optionalInteger(body.rate_per_minute),
          ratePerDay: optionalInteger(body.rate_per_day),
          allowedIps: ipList(body.allowed_ips),
        });
      else throw new HubError('not_found', 404, `no client action ${change}`);
      res.redirect(303, '/settings/clients');
    } catch (err) {
      await renderProblem(res, err, (problem) => showClients(req, res, { problem }));
    }
  });

  // Users and entities: the hub operator's.
  router.use(['/settings/users', '/settings/entities'], requireRole('super-admin'));
  const showUsers = async (res: Response, extra: { created?: NewUser; problem?: HubError } = {}) => {
    res.status(extra.problem?.status ?? 200).render('pages/settings-users', {
      title: 'nav_users',
      users: await fetchUsers(ctx),
      entities: await fetchEntityOverview(ctx),
      roles: USER_ROLES,
      created: extra.created ?? null,
      problem: extra.problem ?? null,
    });
  };
  router.get('/settings/users', (_req, res) => showUsers(res));
  router.post('/settings/users', async (req, res) => {
    const body = req.body as Body;
    try {
      const created = await createUser(
        ctx,
        { username: text(body.username), entity: text(body.entity), role: text(body.role) },
        requireUser(req).username,
      );
      await showUsers(res, { created });
    } catch (err) {
      await renderProblem(res, err, (problem) => showUsers(res, { problem }));
    }
  });
  router.post('/settings/users/:username/:change', async (req, res) => {
    const actor = requireUser(req).username;
    const { username, change } = req.params;
    if (change === 'disable' || change === 'enable')
      await setUserStatus(ctx, username, change === 'enable' ? 'active' : 'disabled', actor);
    else if (change === 'reset-code') await resetUserTotp(ctx, username, actor);
    else throw new HubError('not_found', 404, `no user action ${change}`);
    res.redirect(303, '/settings/users');
  });

  const showEntities = async (res: Response, problem: HubError | null = null) => {
    res.status(problem?.status ?? 200).render('pages/settings-entities', {
      title: 'nav_entities',
      entities: await fetchEntityOverview(ctx),
      problem,
    });
  };
  router.get('/settings/entities', (_req, res) => showEntities(res));
  router.post('/settings/entities', async (req, res) => {
    const body = req.body as Body;
    try {
      await createEntity(ctx, actorOf(requireUser(req)), {
        code: text(body.code),
        labelEn: text(body.label_en),
        labelAr: text(body.label_ar),
      });
      res.redirect(303, '/settings/entities');
    } catch (err) {
      await renderProblem(res, err, (problem) => showEntities(res, problem));
    }
  });

  return router;
}
