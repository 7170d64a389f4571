import type { LeakMonitor } from '../monitor';

/** Installs the isolation probe endpoints. Filled in by the probe work. */
export function installProber(monitor: LeakMonitor): void {
  void monitor;
}
