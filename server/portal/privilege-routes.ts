import { Router, type Request, type Response } from 'express';
import type { AppContext } from '../context.ts';
import {
  applyMatrixPlan,
  assertGrantTerms,
  fetchColumnMatrix,
  fetchTableMatrix,
  planMatrixChanges,
  previewPlan,
  type PrivilegeMatrix,
} from '../services/privilege-matrix-service.ts';
import { HubError } from '../../warehouse/core/errors.ts';
import { actorOf, requireRole, requireUser } from './portal-access.ts';

type Body = Record<string, unknown>;

const readList = (value: unknown): string[] =>
  (Array.isArray(value) ? value : value === undefined ? [] : [value]).filter(
    (v): v is string => typeof v === 'string',
  );

/**
 * The custodian's two matrices. Update computes the difference with the grants as they are;
 * a revoke is shown first with what it would break, and made only when confirmed; a grant
 * needs a purpose and a legal basis. Every change goes through the grant service (and its audit).
 */
export function buildPrivilegeRoutes(ctx: AppContext): Router {
  const router = Router();
  router.use('/privileges', requireRole('super-admin', 'custodian'));

  router.get('/privileges/tables', async (req, res) => {
    const matrix = await fetchTableMatrix(ctx, actorOf(requireUser(req)));
    res.render('pages/privileges-tables', {
      title: 'nav_table_privileges',
      matrix,
      ticked: null,
      saved: req.query.saved === '1',
      problem: null,
      form: {},
    });
  });

  router.post('/privileges/tables', async (req, res) => {
    const matrix = await fetchTableMatrix(ctx, actorOf(requireUser(req)));
    await submitMatrix(
      req,
      res,
      matrix,
      'tables',
      '/privileges/tables',
      'pages/privileges-tables',
      'nav_table_privileges',
    );
  });

  router.get('/privileges/columns', async (req, res) => {
    if (typeof req.query.table === 'string' && /^[a-z][a-z0-9_]*$/.test(req.query.table))
      return res.redirect(303, `/privileges/columns/${req.query.table}`);
    const matrix = await fetchTableMatrix(ctx, actorOf(requireUser(req)));
    res.render('pages/privileges-column-tables', { title: 'nav_column_privileges', matrix });
  });

  router.get('/privileges/columns/:table', async (req, res) => {
    const matrix = await fetchColumnMatrix(ctx, actorOf(requireUser(req)), req.params.table);
    res.render('pages/privileges-columns', {
      title: 'nav_column_privileges',
      matrix,
      table: req.params.table,
      ticked: null,
      saved: req.query.saved === '1',
      problem: null,
      form: {},
    });
  });

  router.post('/privileges/columns/:table', async (req, res) => {
    const matrix = await fetchColumnMatrix(ctx, actorOf(requireUser(req)), req.params.table);
    await submitMatrix(
      req,
      res,
      matrix,
      'columns',
      `/privileges/columns/${req.params.table}`,
      'pages/privileges-columns',
      'nav_column_privileges',
      { table: req.params.table },
    );
  });

  async function submitMatrix(
    req: Request,
    res: Response,
    matrix: PrivilegeMatrix,
    kind: 'tables' | 'columns',
    back: string,
    view: string,
    title: string,
    extra: Record<string, unknown> = {},
  ): Promise<void> {
    const body = req.body as Body;
    const ticked = new Set(readList(body.grant));
    const plan = planMatrixChanges(matrix, ticked, kind);
    const form = {
      purpose: body.purpose ?? '',
      legal_basis: body.legal_basis ?? '',
      expires_at: body.expires_at ?? '',
    };
    let terms = null;
    if (plan.grants.length > 0) {
      try {
        terms = assertGrantTerms(body, ctx.clock.now());
      } catch (err) {
        if (!(err instanceof HubError) || err.status !== 400) throw err;
        res.status(400).render(view, {
          title,
          matrix,
          ticked,
          saved: false,
          problem: err.details?.fields ?? [],
          form,
          ...extra,
        });
        return;
      }
    }
    if (plan.revokes.length > 0 && body.confirm !== 'yes') {
      const preview = await previewPlan(ctx, actorOf(requireUser(req)), plan);
      res.render('pages/privileges-confirm', {
        title: 'confirm_revoke_title',
        plan,
        preview,
        ticked: [...ticked],
        form,
        action: back,
      });
      return;
    }
    await applyMatrixPlan(ctx, actorOf(requireUser(req)), plan, terms);
    res.redirect(303, `${back}?saved=1`);
  }

  return router;
}
