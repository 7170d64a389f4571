import type { LeakMonitor } from '../monitor';

/** Installs the prom-client metrics and `{path}/metrics`. Filled in by the metrics work. */
export function installMetrics(monitor: LeakMonitor): void {
  void monitor;
}
