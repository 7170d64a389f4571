import type { LeakMonitor } from './monitor';

/** Installs the retention detector (checkpoints, analysis, verdicts). Filled in by the detection work. */
export function installDetector(monitor: LeakMonitor): void {
  void monitor;
}
