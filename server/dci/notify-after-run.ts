import type { ConnectorContext } from '../../connectors/run-connector.ts';
import type { AppContext } from '../context.ts';
import { notifySubscribers } from './dci-subscriptions.ts';
import { DciState } from './dci-state.ts';

function isHubContext(ctx: ConnectorContext): ctx is ConnectorContext & AppContext {
  return 'config' in ctx && 'catalog' in ctx && 'abilities' in ctx && 'audit' in ctx;
}

/**
 * Called when a connector run has committed: DCI subscribers hear of the births, deaths and
 * changes it brought. A bare load (no hub context) notifies nobody; a failed notification is
 * logged and never fails the run, whose data is already committed.
 */
export async function notifyAfterRun(
  ctx: ConnectorContext,
  run: { status: string; table: string },
): Promise<void> {
  if (run.status !== 'succeeded' || !isHubContext(ctx)) return;
  try {
    const active = await ctx
      .knex('hub_dci_subscriptions')
      .where({ status: 'subscribe' })
      .first<{ code: string } | undefined>('code');
    if (active === undefined) return;
    await notifySubscribers(ctx, new DciState(ctx), run.table);
  } catch (err) {
    ctx.logger.warn({ err, table: run.table }, 'DCI notify after the connector run failed');
  }
}
