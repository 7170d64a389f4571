import v8 from 'node:v8';
import type { LeakMonitor } from '../monitor';
import { summarize, byConcern } from '../summary';
import { sendJson, HttpError } from './respond';
import { installGcApi } from './gcApi';

/** Memory of the whole process now. Reads /proc, so only on request, never per recorded request. */
export function processMemory(): Record<string, number> {
  const mu = process.memoryUsage();
  const hs = v8.getHeapStatistics();
  return {
    rss: mu.rss,
    heapUsed: mu.heapUsed,
    heapTotal: mu.heapTotal,
    external: mu.external,
    arrayBuffers: mu.arrayBuffers,
    heapLimit: hs.heap_size_limit,
  };
}

/** The JSON API every other view is built on. */
export function installApi(monitor: LeakMonitor): void {
  const r = monitor.router;
  installGcApi(monitor);

  r.get('/api/routes', (ctx) => {
    const routes = [...monitor.recorder.routes.values()].map(summarize).sort(byConcern);
    sendJson(ctx.res, 200, {
      routes,
      totalRequests: monitor.recorder.totalRequests,
      inFlight: monitor.recorder.inFlight,
      overflowed: monitor.recorder.overflowed,
      maxRoutes: monitor.options.maxRoutes,
    });
  });

  r.get('/api/route', (ctx) => {
    const method = ctx.query.get('method');
    const route = ctx.query.get('route');
    if (!method || !route) throw new HttpError(400, 'query parameters "method" and "route" are required, e.g. ?method=GET&route=/users/:id');
    const s = monitor.route(method, route);
    if (!s) throw new HttpError(404, `no recorded route ${method.toUpperCase()} ${route}`);
    sendJson(ctx.res, 200, {
      ...summarize(s),
      series: {
        durationMs: s.durationMs.toArray(),
        heapDelta: s.heapDelta.toArray(),
        externalDelta: s.externalDelta.toArray(),
      },
      lastRequest: s.lastRequest ? { method: s.lastRequest.method, url: s.lastRequest.url } : null,
    });
  });

  r.get('/api/process', (ctx) => {
    sendJson(ctx.res, 200, {
      memory: processMemory(),
      uptimeSeconds: process.uptime(),
      pid: process.pid,
      mode: monitor.options.mode,
      totalRequests: monitor.recorder.totalRequests,
      inFlight: monitor.recorder.inFlight,
      findings: monitor.processFindings,
      addedGlobals: monitor.recorder.addedGlobals(),
    });
  });
}
