import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { HubError } from '../warehouse/core/errors.ts';
import { describeConnectionError } from '../warehouse/db.ts';
import type { ConnectorDefinition } from './definition.ts';
import { runConnector, type ConnectorContext } from './run-connector.ts';

/**
 * Runs each connector on its cron schedule. Overlap is prevented twice: node-cron skips a tick
 * while this process still runs the connector, and the warehouse lock stops a second hub
 * process on the same warehouse.
 */
export class ConnectorScheduler {
  private readonly tasks: ScheduledTask[] = [];

  constructor(
    private readonly ctx: ConnectorContext & { logger: Logger },
    private readonly timezone?: string,
  ) {}

  start(defs: ConnectorDefinition[]): string[] {
    const scheduled: string[] = [];
    for (const def of defs) {
      if (def.schedule === undefined) continue;
      const task = cron.schedule(def.schedule, () => this.runScheduled(def), {
        name: def.name,
        noOverlap: true,
        ...(this.timezone === undefined ? {} : { timezone: this.timezone }),
      });
      this.tasks.push(task);
      scheduled.push(`${def.name} (${def.schedule})`);
    }
    return scheduled;
  }

  async stop(): Promise<void> {
    for (const task of this.tasks.splice(0)) await task.stop();
  }

  private async runScheduled(def: ConnectorDefinition): Promise<void> {
    try {
      const summary = await runConnector(def, this.ctx, { trigger: 'schedule' });
      this.ctx.logger.info({ summary }, `connector ${def.name} ${summary.status}`);
    } catch (err) {
      if (err instanceof HubError && err.code === 'connector_busy') this.ctx.logger.info(err.message);
      // One entry with the reason: an unreachable warehouse is an outage to report, not a stack to print.
      else
        this.ctx.logger.error(
          { connector: def.name, reason: describeConnectionError(err) ?? String(err) },
          `connector ${def.name} could not run`,
        );
    }
  }
}
