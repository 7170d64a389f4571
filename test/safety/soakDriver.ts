/**
 * The soak: many requests over many distinct URLs, driven in-process through the real adapters
 * (Express as a plain `(req, res)` handler through light-my-request, which builds
 * `http.IncomingMessage`/`ServerResponse` subclasses; Fastify through its own `inject`), while the
 * same app also listens on loopback so that isolation probes can replay over real HTTP.
 * Shared by test/safety/soak.test.ts (a slice) and test/bench/soak.ts (the full million).
 */
import http from 'node:http';
import v8 from 'node:v8';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import inject from 'light-my-request';
import Fastify from 'fastify';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import { forceFullGc } from '../../src/core/gc';
import type { LeakMonitor } from '../../src/core/monitor';

export type SoakFlavour = 'Express 5' | 'Fastify 5';

/** Route templates beyond maxRoutes, so the overflow bucket is exercised too. */
export const TEMPLATES = 300;
export const MAX_ROUTES = 200;

export interface SoakApp {
  flavour: SoakFlavour;
  port: number;
  monitor: LeakMonitor | undefined;
  /** One request, in-process. */
  send(method: string, url: string, payload?: string): Promise<number>;
  /** Express: how often the request ran off the end of the app's stack (never, in this app). */
  unexpected(): number;
  /** A route that keeps 2 KB per request: the positive control for leakTest. */
  leaky: string[];
  close(): Promise<void>;
}

export async function startSoakApp(flavour: SoakFlavour, withLeakwatch: boolean): Promise<SoakApp> {
  const leaky: string[] = [];
  const lw = { notice: false, maxRoutes: MAX_ROUTES, logger: { info() {}, warn(m: string) { process.stderr.write(m + '\n'); } } };
  // A flat string of known size (MEASURING.md §2: 'x'.repeat(n) would be a small rope).
  const keep = (n: number) => { leaky.push(randomBytes(n / 2).toString('hex')); };
  if (flavour === 'Fastify 5') {
    const app = Fastify();
    if (withLeakwatch) await app.register(fastifyLeakwatch, lw);
    app.get('/users/:id', async (req: any) => ({ id: req.params.id }));
    app.get('/items/:cat/:id', async (req: any) => ({ cat: req.params.cat, id: req.params.id }));
    for (let k = 0; k < TEMPLATES; k++) app.get(`/r${k}/:id`, async () => ({ k }));
    app.post('/echo', async (req: any) => ({ n: JSON.stringify(req.body ?? null).length }));
    app.get('/leak/:id', async () => { keep(2048); return { ok: true }; });
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as AddressInfo).port;
    const host = `127.0.0.1:${port}`;
    return {
      flavour, port, monitor: withLeakwatch ? app.leakwatch : undefined, leaky,
      send: async (method, url, payload) => (await app.inject({ method: method as any, url, payload, headers: payload ? { host, 'content-type': 'application/json' } : { host } })).statusCode,
      unexpected: () => 0,
      close: async () => { await app.close(); },
    };
  }
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const express = require('express');
  const app = express();
  let unexpectedDone = 0;
  const mw = withLeakwatch ? leakwatch(lw) : undefined;
  if (mw) app.use(mw);
  app.get('/users/:id', (req: any, res: any) => res.json({ id: req.params.id }));
  app.get('/items/:cat/:id', (req: any, res: any) => res.json({ cat: req.params.cat, id: req.params.id }));
  for (let k = 0; k < TEMPLATES; k++) app.get(`/r${k}/:id`, (_req: any, res: any) => res.json({ k }));
  app.post('/echo', express.json(), (req: any, res: any) => res.json({ n: JSON.stringify(req.body ?? null).length }));
  app.get('/leak/:id', (_req: any, res: any) => { keep(2048); res.json({ ok: true }); });
  app.use((_req: any, res: any) => res.status(404).json({ error: 'not found' }));
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const host = `127.0.0.1:${port}`;
  return {
    flavour, port, monitor: mw?.monitor, leaky,
    // app.handle with a final callback instead of app itself: light-my-request's fake response
    // breaks when Express's default finalhandler touches it after a probe has run (observed;
    // the callback is never called in this app, which ends every request itself, and is counted).
    send: async (method, url, payload) => (await inject((req: any, res: any) => app.handle(req, res, () => { unexpectedDone++; }), { method: method as any, url, payload, headers: payload ? { host, 'content-type': 'application/json' } : { host } })).statusCode,
    unexpected: () => unexpectedDone,
    close: async () => {
      mw?.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/**
 * The i-th request of the soak over `distinct` URLs: param routes, two-param routes, routes past
 * maxRoutes, unmatched URLs (404s) on several methods, and POSTs with a body. Every value of
 * `i % distinct` is a different URL.
 */
export function soakRequest(i: number, distinct: number): { method: string; url: string; payload?: string } {
  const u = i % distinct;
  switch (u % 10) {
    case 0: case 1: case 2: return { method: 'GET', url: `/users/${u}` };
    case 3: case 4: return { method: 'GET', url: `/items/c${u % 37}/${u}?q=${u}` };
    case 5: return { method: 'GET', url: `/r${Math.floor(u / 10) % TEMPLATES}/${u}` };
    case 6: case 7: return { method: 'GET', url: `/nope/${u}/x` };
    case 8: return { method: u % 20 === 8 ? 'PUT' : 'DELETE', url: `/missing/${u}` };
    default: return { method: 'POST', url: `/echo?u=${u}`, payload: JSON.stringify({ u, pad: 'x'.repeat(u % 200) }) };
  }
}

/** Live heap after a forced full GC (twice, so weak callbacks and finalizers have run). */
export function liveHeap(): number {
  forceFullGc();
  forceFullGc();
  return v8.getHeapStatistics().used_heap_size;
}

export interface SoakRun {
  requests: number;
  statuses: Record<string, number>;
  probes: number;
  probeStatuses: Record<string, number>;
  ms: number;
}

/**
 * Sends `count` requests starting at `from`, `concurrency` at a time, yielding to the event loop
 * between batches (as a real server does between socket reads: it lets timers, checkpoints and
 * immediates run). Every `probeEvery` requests (0: never) one isolation probe runs over HTTP.
 */
export async function drive(app: SoakApp, from: number, count: number, distinct: number, opts: { concurrency?: number; probeEvery?: number } = {}): Promise<SoakRun> {
  const conc = opts.concurrency ?? 32;
  const statuses: Record<string, number> = {};
  const probeStatuses: Record<string, number> = {};
  let probes = 0;
  const t0 = performance.now();
  const probeRoutes = ['/users/:id', '/items/:cat/:id', '/r7/:id'];
  for (let i = from; i < from + count; i += conc) {
    const n = Math.min(conc, from + count - i);
    const batch: Promise<number>[] = [];
    for (let j = 0; j < n; j++) {
      const r = soakRequest(i + j, distinct);
      batch.push(app.send(r.method, r.url, r.payload));
    }
    for (const s of await Promise.all(batch)) statuses[s] = (statuses[s] ?? 0) + 1;
    await new Promise((r) => setImmediate(r));
    if (opts.probeEvery && app.monitor && Math.floor((i - from + n) / opts.probeEvery) > Math.floor((i - from) / opts.probeEvery)) {
      const route = probeRoutes[probes % probeRoutes.length];
      const status = await probeOverHttp(app.port, route);
      probes++;
      probeStatuses[status] = (probeStatuses[status] ?? 0) + 1;
    }
  }
  return { requests: count, statuses, probes, probeStatuses, ms: performance.now() - t0 };
}

function probeOverHttp(port: number, route: string): Promise<number> {
  const body = JSON.stringify({ method: 'GET', route, iterations: 3, warmup: 1, objects: false });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/__leaks/api/probe', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
    req.end(body);
  });
}
