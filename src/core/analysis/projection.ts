/**
 * Byte counts for people: decimal units (1 KB = 1,000 B) so that the seed's arithmetic reads
 * right: 5 KB/request → 5 MB after 1,000 requests.
 *
 * @example
 * ```ts
 * formatBytes(5_000);      // '5 KB'
 * formatBytes(1_234_567);  // '1.2 MB'
 * formatBytes(-2_000);     // '-2 KB'
 * ```
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const sign = bytes < 0 ? '-' : '';
  let v = Math.abs(bytes);
  const units = ['B', 'KB', 'MB', 'GB', 'TB', 'PB'];
  let u = 0;
  while (v >= 1000 && u < units.length - 1) { v /= 1000; u++; }
  const digits = u === 0 || v >= 100 ? 0 : v >= 10 ? 0 : 1;
  let text = v.toFixed(digits);
  if (text.endsWith('.0')) text = text.slice(0, -2);
  return `${sign}${text} ${units[u]}`;
}

/** "1,000" style integers. */
export function formatCount(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

export interface Projection {
  bytesPerRequest: number;
  /** What one process keeps after serving 1,000 requests of this route. */
  after1000Bytes: number;
  /** What `workers` processes keep after each served 10,000 requests of this route. */
  after10000AcrossWorkersBytes: number;
  workers: number;
  text: string;
}

/**
 * The seed's arithmetic made live: "if the code leaks 5 KB per request, then after 1,000
 * requests 5 MB will have leaked", and across N worker processes, each serving 10,000 requests.
 *
 * @example
 * ```ts
 * project(5_000, 20).text;
 * // '5 KB/request → 5 MB after 1,000 requests; 1 GB after 10,000 requests across 20 workers'
 * ```
 */
export function project(bytesPerRequest: number, workers: number): Projection {
  const b = Math.max(0, bytesPerRequest);
  const after1000Bytes = b * 1000;
  const after10000AcrossWorkersBytes = b * 10_000 * workers;
  const text = `${formatBytes(b)}/request → ${formatBytes(after1000Bytes)} after 1,000 requests; `
    + `${formatBytes(after10000AcrossWorkersBytes)} after 10,000 requests across ${formatCount(workers)} worker${workers === 1 ? '' : 's'}`;
  return { bytesPerRequest: b, after1000Bytes, after10000AcrossWorkersBytes, workers, text };
}

/**
 * Seconds until the heap reaches `limitBytes` at `bytesPerSecond`; null when not growing.
 *
 * @example
 * ```ts
 * secondsToLimit(100e6, 200e6, 1e6); // 100
 * ```
 */
export function secondsToLimit(liveBytes: number, limitBytes: number, bytesPerSecond: number): number | null {
  if (!(bytesPerSecond > 0) || !Number.isFinite(liveBytes) || !Number.isFinite(limitBytes)) return null;
  return Math.max(0, (limitBytes - liveBytes) / bytesPerSecond);
}

/**
 * "3 h 20 min" style durations for the time-to-limit line.
 *
 * @example
 * ```ts
 * formatDuration(12_000); // '3 h 20 min'
 * ```
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return 'never';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60 ? `${s % 60} s` : ''}`.trim();
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}
