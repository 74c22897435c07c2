import cron, { type ScheduledTask } from 'node-cron';
import type { Logger } from 'pino';
import { HubError } from '../warehouse/core/errors.ts';
import { describeConnectionError } from '../warehouse/db.ts';
import type { ConnectorRunner } from '../server/services/connector-runner.ts';
import type { ConnectorDefinition } from './definition.ts';

/**
 * Runs each connector on its cron schedule, through the hub's runner (in `hub start`, each run in
 * a process of its own), by name: the definition as the folder holds it at the tick. Overlap is
 * prevented twice: node-cron skips a tick while this hub still runs the connector, and the
 * warehouse lock stops a second hub process on the same warehouse.
 */
export class ConnectorScheduler {
  private readonly tasks: ScheduledTask[] = [];

  constructor(
    private readonly ctx: { connectorRuns: ConnectorRunner; logger: Logger },
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
      const summary = await this.ctx.connectorRuns.run(def.name, { trigger: 'schedule' });
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
