import { Router, type Request } from 'express';
import type { AppContext } from '../context.ts';
import {
  AUDIT_PAGE_SIZE,
  exportAuditCsv,
  fetchPersonReaders,
  searchAudit,
  verifyAuditLog,
  type AuditFilter,
} from '../services/portal-admin-service.ts';
import { actorOf, requireRole, requireUser } from './portal-access.ts';

const readFilter = (query: Record<string, unknown>): AuditFilter => {
  const pick = (name: string) => (typeof query[name] === 'string' ? query[name].trim() : '');
  return {
    actor: pick('actor'),
    entity: pick('entity'),
    action: pick('action'),
    from: pick('from'),
    to: pick('to'),
  };
};

export function buildAuditRoutes(ctx: AppContext): Router {
  const router = Router();
  // Everyone signed in reads the audit, each as far as its role reaches (the service scopes it).
  router.use('/audit', requireRole('super-admin', 'custodian', 'entity-admin'));
  const scopeOf = (req: Request) => {
    const user = requireUser(req);
    return {
      canVerify: user.role === 'super-admin',
      scopeEntity: user.role === 'super-admin' ? null : user.entity,
    };
  };

  router.get('/audit', async (req, res) => {
    const filter = readFilter(req.query);
    const page = Math.max(1, Number(req.query.page) || 1);
    const result = await searchAudit(ctx, actorOf(requireUser(req)), filter, page);
    const nationalId = typeof req.query.national_id === 'string' ? req.query.national_id.trim() : '';
    const readers =
      nationalId === '' ? null : await fetchPersonReaders(ctx, actorOf(requireUser(req)), nationalId);
    const query = new URLSearchParams(
      Object.entries(filter).filter(([, v]) => v !== '') as Array<[string, string]>,
    ).toString();
    res.render('pages/audit', {
      title: 'nav_audit',
      filter,
      page,
      result,
      pageSize: AUDIT_PAGE_SIZE,
      query,
      nationalId,
      readers,
      report: null,
      ...scopeOf(req),
    });
  });

  router.get('/audit/export.csv', async (req, res) => {
    const csv = await exportAuditCsv(ctx, actorOf(requireUser(req)), readFilter(req.query));
    res.type('text/csv').attachment('audit.csv').send(csv);
  });

  router.post('/audit/verify', requireRole('super-admin'), async (req, res) => {
    const report = await verifyAuditLog(ctx, actorOf(requireUser(req)));
    const result = await searchAudit(ctx, actorOf(requireUser(req)), {}, 1);
    res.render('pages/audit', {
      title: 'nav_audit',
      filter: {},
      page: 1,
      result,
      pageSize: AUDIT_PAGE_SIZE,
      query: '',
      nationalId: '',
      readers: null,
      report,
      ...scopeOf(req),
    });
  });

  return router;
}
