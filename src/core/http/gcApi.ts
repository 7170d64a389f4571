import v8 from 'node:v8';
import type { LeakMonitor } from '../monitor';
import { forceFullGc } from '../gc';
import { sendJson } from './respond';
import { performance } from 'node:perf_hooks';

/** Heap figures around a forced GC. `v8.getHeapStatistics()` is cheap; rss reads /proc once. */
export interface HeapFigures {
  heapUsed: number;
  heapTotal: number;
  external: number;
  rss: number;
}

function heapNow(): HeapFigures {
  const hs = v8.getHeapStatistics() as v8.HeapInfo & { external_memory?: number };
  const mu = process.memoryUsage();
  return { heapUsed: hs.used_heap_size, heapTotal: hs.total_heap_size, external: mu.external, rss: mu.rss };
}

/** The JSON answer of `POST {path}/api/gc`. */
export interface GcAnswer {
  before: HeapFigures;
  after: HeapFigures;
  /** heapUsed before minus after: the garbage the GC found (negative if something allocated meanwhile). */
  freedBytes: number;
  durationMs: number;
}

/**
 * Registers `POST {path}/api/gc`: forces a full (mark-compact) GC and answers the heap before and
 * after. It is a POST because it blocks the event loop (tens to hundreds of ms): the router's
 * cross-site and content-type checks apply. A no-JS form post is answered with a redirect back
 * to the dashboard.
 *
 * @example
 * ```sh
 * curl -X POST -H 'content-type: application/json' -d '{}' http://127.0.0.1:3000/__leaks/api/gc
 * # {"before":{"heapUsed":9100000,...},"after":{"heapUsed":7400000,...},"freedBytes":1700000,"durationMs":12.3}
 * ```
 */
export function installGcApi(monitor: LeakMonitor): void {
  monitor.router.post('/api/gc', (ctx) => {
    const before = heapNow();
    const t0 = performance.now();
    forceFullGc();
    const durationMs = performance.now() - t0;
    const after = heapNow();
    if (ctx.isForm) {
      ctx.res.statusCode = 303;
      ctx.res.setHeader('Location', ctx.base);
      ctx.res.setHeader('Cache-Control', 'no-store');
      ctx.res.end();
      return;
    }
    const answer: GcAnswer = { before, after, freedBytes: before.heapUsed - after.heapUsed, durationMs };
    sendJson(ctx.res, 200, answer);
  });
}
