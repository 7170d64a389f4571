import type { LeakMonitor } from '../monitor';

/** Installs the EJS dashboard pages. Filled in by the dashboard work. */
export function installDashboard(monitor: LeakMonitor): void {
  void monitor;
}
