import type { LeakMonitor } from './monitor';

/** The one-line startup notice: where the dashboard is and who may open it. */
export function announce(monitor: LeakMonitor, framework: string, address?: string): void {
  const o = monitor.options;
  if (!o.notice) return;
  const who = o.authorizeIsDefault ? 'loopback clients only' : 'clients your authorize() allows';
  const where = address ? `${address}${o.path}` : o.path;
  try {
    o.logger.info(`leakwatch (${framework}, ${o.mode} mode): dashboard at ${where}, open to ${who}`);
  } catch { /* a broken logger must not break start-up */ }
}
