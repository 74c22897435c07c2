import cliProgress from 'cli-progress';
import type { LoadStats } from '../../warehouse/load/load-types.ts';

export interface ProgressDisplay {
  update(stats: LoadStats): void;
  stop(): void;
}

const noProgress: ProgressDisplay = { update: () => undefined, stop: () => undefined };

/** A live bar on a terminal only: piped output and --json stay clean. */
export function startProgress(label: string, enabled: boolean): ProgressDisplay {
  if (!enabled || process.stderr.isTTY !== true) return noProgress;
  const bar = new cliProgress.SingleBar(
    {
      format: `${label.padEnd(22)} {bar} {value} rows read · {inserted} inserted · {updated} updated · {rejected} rejected · {duration}s`,
      stream: process.stderr,
      hideCursor: true,
      barsize: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  let total = 1000;
  bar.start(total, 0, { inserted: 0, updated: 0, rejected: 0 });
  return {
    update(stats) {
      // Sources stream without a known length: the bar's end moves ahead of the count.
      if (stats.read >= total) {
        total = Math.max(total * 2, stats.read * 2);
        bar.setTotal(total);
      }
      bar.update(stats.read, { inserted: stats.inserted, updated: stats.updated, rejected: stats.rejected });
    },
    stop() {
      bar.update(total);
      bar.stop();
    },
  };
}
