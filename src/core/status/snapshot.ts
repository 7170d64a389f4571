import fs from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import type { ServerResponse } from 'node:http';
import { CSP } from '../http/respond';

/**
 * Extra memory a heap snapshot needs, as a multiple of the used JS heap. Measured here: a 50 MB
 * heap's snapshot added 650–875 MB of RSS while it was taken (MEASURING.md §6), i.e. up to 17×.
 */
export const SNAPSHOT_MEMORY_FACTOR = 20;
/** Head-room kept free on top of that estimate, so the host survives the snapshot. */
export const SNAPSHOT_MEMORY_MARGIN = 256 * 1024 * 1024;

export interface SnapshotPreflight {
  ok: boolean;
  heapUsed: number;
  /** Estimated extra memory the snapshot will take. */
  needed: number;
  /** Memory available to this process now (MemAvailable, or the cgroup limit minus RSS). */
  available: number;
  reason: string;
}

/**
 * Decides whether taking a heap snapshot is safe. Pure, so the refusal is testable.
 *
 * @example
 * ```ts
 * snapshotPreflight(50e6, 200e6).ok; // false: about 1 GB would be needed
 * ```
 */
export function snapshotPreflight(heapUsed: number, available: number): SnapshotPreflight {
  const needed = heapUsed * SNAPSHOT_MEMORY_FACTOR + SNAPSHOT_MEMORY_MARGIN;
  const ok = available >= needed;
  const mb = (n: number) => `${Math.round(n / 1e6)} MB`;
  return {
    ok, heapUsed, needed, available,
    reason: ok
      ? `about ${mb(needed)} needed, ${mb(available)} available`
      : `not enough free memory for a heap snapshot: a ${mb(heapUsed)} heap needs about ${mb(needed)} (${SNAPSHOT_MEMORY_FACTOR}× the heap plus ${mb(SNAPSHOT_MEMORY_MARGIN)}), only ${mb(available)} is available`,
  };
}

/** Memory this process may still use: the smaller of MemAvailable and the cgroup head-room. */
export function availableMemory(): number {
  let avail = os.freemem();
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) avail = Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  const limit = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  if (limit && limit > 0 && limit < 2 ** 60) avail = Math.min(avail, Math.max(0, limit - process.memoryUsage.rss()));
  return avail;
}

/**
 * Streams `v8.getHeapSnapshot()` to the response as a download. V8 strings cap near 512 MB, so
 * the snapshot is never built as one string. The event loop is blocked while V8 walks the heap.
 */
export function streamHeapSnapshot(res: ServerResponse, onDone: (err?: Error) => void): void {
  const name = `leakwatch-${process.pid}-${new Date().toISOString().replace(/[:.]/g, '-')}.heapsnapshot`;
  let stream: NodeJS.ReadableStream;
  try {
    stream = v8.getHeapSnapshot();
  } catch (e) {
    onDone(e as Error);
    throw e;
  }
  res.statusCode = 200;
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Content-Type', 'application/octet-stream');
  res.setHeader('Content-Disposition', `attachment; filename="${name}"`);
  let finished = false;
  const done = (err?: Error) => { if (!finished) { finished = true; onDone(err); } };
  stream.on('error', (e: Error) => { done(e); res.destroy(e); });
  res.on('close', () => { done(); (stream as unknown as { destroy?: () => void }).destroy?.(); });
  res.on('finish', () => done());
  stream.pipe(res);
}
