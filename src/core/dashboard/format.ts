/**
 * Number formatting for the dashboard. Pure functions: the pages, their tests and the JSON
 * endpoints all use them, so a figure reads the same everywhere.
 */

const UNITS = ['B', 'KB', 'MB', 'GB', 'TB'];

/**
 * Bytes in decimal units with about three significant digits (the seed's "5 KB" reads as 5,000 B).
 *
 * @example
 * ```ts
 * formatBytes(5120);   // "5.12 KB"
 * formatBytes(-2048);  // "−2.05 KB"
 * ```
 */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return '–';
  const sign = n < 0 ? '−' : '';
  let v = Math.abs(n);
  let u = 0;
  while (v >= 1000 && u < UNITS.length - 1) { v /= 1000; u++; }
  const digits = u === 0 ? 0 : v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${sign}${v.toFixed(digits)} ${UNITS[u]}`;
}

/**
 * An integer with thousands separators, independent of the server's locale.
 *
 * @example
 * ```ts
 * formatCount(1234567); // "1,234,567"
 * ```
 */
export function formatCount(n: number): string {
  if (!Number.isFinite(n)) return '–';
  const sign = n < 0 ? '−' : '';
  return sign + String(Math.round(Math.abs(n))).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/**
 * A duration in seconds, coarse: "45 s", "12 min", "3.5 h", "2.1 days".
 *
 * @example
 * ```ts
 * formatDuration(5400); // "1.5 h"
 * ```
 */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '–';
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} days`;
}

/** Age of a timestamp (ms since the epoch) relative to `now`, e.g. "12 s ago". */
export function formatAgo(at: number | null | undefined, now = Date.now()): string {
  if (at === null || at === undefined || !Number.isFinite(at)) return '–';
  return `${formatDuration(Math.max(0, (now - at) / 1000))} ago`;
}

/**
 * The seed's arithmetic made live: what a per-request retention adds up to.
 *
 * @example
 * ```ts
 * projectionText(5000, 20);
 * // "5.00 KB/request → 5.00 MB after 1,000 requests; 100 MB across 20 workers"
 * ```
 */
export function projectionText(bytesPerRequest: number | null | undefined, workers: number): string | null {
  if (bytesPerRequest === null || bytesPerRequest === undefined || !Number.isFinite(bytesPerRequest) || bytesPerRequest <= 0) return null;
  const per1000 = bytesPerRequest * 1000;
  const across = workers > 1 ? `; ${formatBytes(per1000 * workers)} across ${formatCount(workers)} workers` : '';
  return `${formatBytes(bytesPerRequest)}/request → ${formatBytes(per1000)} after 1,000 requests${across}`;
}
