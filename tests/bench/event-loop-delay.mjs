// Loaded into a benchmarked server with --import (cluster workers inherit it): how long its main
// thread's event loop was kept from running. SIGUSR2 writes the histogram since the last signal
// to BENCH_EVENT_LOOP_DIR/<pid>.json and starts a new one, so the benchmark brackets a run.
import { renameSync, writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { isMainThread } from 'node:worker_threads';

const dir = process.env.BENCH_EVENT_LOOP_DIR;
if (isMainThread && dir !== undefined) {
  const histogram = monitorEventLoopDelay({ resolution: 5 });
  histogram.enable();
  const ms = (ns) => Math.round(ns / 1e4) / 100;
  process.on('SIGUSR2', () => {
    const snapshot = { p99: ms(histogram.percentile(99)), max: ms(histogram.max) };
    // Renamed into place, so the benchmark never reads half a file.
    writeFileSync(`${dir}/${process.pid}.tmp`, JSON.stringify(snapshot));
    renameSync(`${dir}/${process.pid}.tmp`, `${dir}/${process.pid}.json`);
    histogram.reset();
  });
}
