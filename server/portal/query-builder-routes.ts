import { Router, type Request, type Response } from 'express';
import { HubError } from '../../warehouse/core/errors.ts';
import type { AppContext } from '../context.ts';
import {
  describeBuilderSql,
  fetchBuilderTables,
  fetchSavedQueryStatus,
  QUERY_OPERATORS,
  runBuilderQuery,
  type BuilderRun,
  type BuilderTable,
  type CompiledSql,
} from '../services/query-builder-service.ts';
import { saveQuery } from '../services/query-service.ts';
import { requireRole, requireUser } from './portal-access.ts';
import {
  buildDefinition,
  buildParamValues,
  emptyBuilderState,
  readBuilderState,
  type BuilderState,
} from './query-builder-form.ts';

const PREVIEW_NAME = 'builder-preview';

/**
 * The entity admin's query builder and saved queries. Every step goes through the query
 * services with the entity's grants as they are now: the tables offered, the SQL shown, the
 * page run (audited) and the query saved.
 */
export function buildQueryBuilderRoutes(ctx: AppContext): Router {
  const router = Router();
  router.use('/queries', requireRole('super-admin', 'entity-admin'));

  const render = (
    res: Response,
    available: BuilderTable[],
    state: BuilderState,
    extra: { sql?: CompiledSql; run?: BuilderRun; problem?: HubError } = {},
  ) => {
    const definition =
      state.tables.length > 0
        ? buildDefinition(state, requireUser(res.req).entity, available, PREVIEW_NAME)
        : null;
    res.status(extra.problem?.status ?? 200).render('pages/query-builder', {
      title: 'nav_query_builder',
      available,
      state,
      operators: QUERY_OPERATORS,
      params: Object.keys(definition?.params ?? {}),
      sql: extra.sql ?? null,
      run: extra.run ?? null,
      problem: extra.problem ?? null,
    });
  };

  router.get('/queries/builder', async (req, res) => {
    render(res, await fetchBuilderTables(ctx, requireUser(req).entity), emptyBuilderState());
  });

  router.post('/queries/builder', async (req: Request, res) => {
    const user = requireUser(req);
    const available = await fetchBuilderTables(ctx, user.entity);
    const body = req.body as Record<string, unknown>;
    const state = readBuilderState(body, available);
    const action = typeof body.action === 'string' ? body.action : 'refresh';
    const [verb, argument = ''] = action.split(':');
    if (verb === 'check_all' || verb === 'uncheck_all') {
      const table = available.find((t) => t.name === argument);
      const refs = table?.columns.map((c) => `${table.name}.${c.name}`) ?? [];
      state.columns =
        verb === 'check_all'
          ? [...new Set([...state.columns, ...refs])]
          : state.columns.filter((c) => !refs.includes(c));
      return render(res, available, state);
    }
    if (verb === 'add_condition') {
      state.conditions.push({ column: state.columns[0] ?? '', op: '=', mode: 'value', value: '', param: '' });
      return render(res, available, state);
    }
    if (verb !== 'generate' && verb !== 'run' && verb !== 'save') return render(res, available, state);
    const definition = buildDefinition(state, user.entity, available, PREVIEW_NAME);
    try {
      if (verb === 'save') {
        const saved = await saveQuery(ctx, { ...definition, name: state.name }, user.username);
        return res.redirect(303, `/queries?saved=${encodeURIComponent(saved.name)}`);
      }
      const params = buildParamValues(state, definition);
      const sql = await describeBuilderSql(ctx, definition, params);
      if (verb === 'generate') return render(res, available, state, { sql });
      if (argument !== '') state.page = Math.max(1, Number(argument) || 1);
      const run = await runBuilderQuery(ctx, user.username, definition, params, state.page);
      return render(res, available, state, { sql, run });
    } catch (err) {
      if (err instanceof HubError && err.status < 500) return render(res, available, state, { problem: err });
      throw err;
    }
  });

  router.get('/queries', async (req, res) => {
    const user = requireUser(req);
    const queries = await fetchSavedQueryStatus(ctx, user.role === 'super-admin' ? null : user.entity);
    const base = `${req.protocol}://${req.get('host') ?? 'localhost'}`;
    res.render('pages/queries', {
      title: 'nav_saved_queries',
      queries,
      base,
      saved: typeof req.query.saved === 'string' ? req.query.saved : null,
    });
  });

  return router;
}
