import type { RunOptions, RunSummary } from '../../connectors/run-connector.ts';
import type { AppContext } from '../context.ts';
import { runConnectorByName } from './connector-service.ts';

/**
 * Carries out the connector runs a serving hub starts itself: the schedules and the portal's
 * Run now. `hub start` runs each in a process of its own (load-process.ts); a context opened
 * for one command or a test runs them in its own process.
 */
export interface ConnectorRunner {
  /** Resolves with the run's summary; `onStart` and `onProgress` are called as the run reports them. */
  run(name: string, options: RunOptions): Promise<RunSummary>;
  /** Ends the runs under way, where they run elsewhere, and waits until their history says how they ended. */
  close(): Promise<void>;
}

export function runInThisProcess(ctx: AppContext): ConnectorRunner {
  return {
    run: (name, options) => runConnectorByName(ctx, name, options),
    close: () => Promise.resolve(),
  };
}
