/**
 * `npm run bench:hotpath`: nanoseconds (and bytes allocated) per request in leakwatch's per-request
 * path, in-process, against the physical floor of any per-route tracker: one Map lookup plus one
 * counter increment. Also the primitives the path is built from, so the costs can be read apart.
 *
 * Each case runs in batches of BATCH requests; the figure is the median over batches of
 * (batch time − the same batch through an empty harness) / BATCH. Wall-clock, so re-run if the
 * machine is busy; the ranking is what matters.
 */
import { EventEmitter } from 'node:events';
import v8 from 'node:v8';
import { Recorder } from '../../src/core/recorder';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import type { LeakMonitor } from '../../src/core/monitor';
import { fix, machine, median, table, writeResult } from './util';
import { prop } from '../../src/core/prop';
import { expressTemplate, routerOf } from '../../src/express/template';

const BATCH = 2000;
const quick = process.argv.includes('--quick');
const BATCHES = quick ? 40 : 200;

interface Case {
  name: string;
  /** Runs one batch; resolves when every request of it is recorded. */
  run(): void | Promise<void>;
  /** Subtracted from `run`: the same work without leakwatch (harness objects, events). */
  harness?: () => void | Promise<void>;
}

interface Row { name: string; ns: number; gross: number; harness: number; bytes: number }

function heapUsed(): number {
  return v8.getHeapStatistics().used_heap_size;
}

async function measure(c: Case): Promise<Row> {
  const times: number[] = [];
  const bytes: number[] = [];
  const base: number[] = [];
  const baseBytes: number[] = [];
  for (let i = 0; i < 10; i++) { await c.run(); if (c.harness) await c.harness(); } // warm-up, JIT
  for (let b = 0; b < BATCHES; b++) {
    let h0 = heapUsed();
    let t0 = performance.now();
    await c.run();
    times.push((performance.now() - t0) * 1e6 / BATCH);
    let d = heapUsed() - h0;
    if (d >= 0) bytes.push(d / BATCH); // a scavenge inside the batch makes the delta meaningless
    if (c.harness) {
      h0 = heapUsed();
      t0 = performance.now();
      await c.harness();
      base.push((performance.now() - t0) * 1e6 / BATCH);
      d = heapUsed() - h0;
      if (d >= 0) baseBytes.push(d / BATCH);
    }
  }
  const net = c.harness ? times.map((t, i) => t - base[i]) : times;
  return {
    name: c.name,
    ns: median(net),
    gross: median(times),
    harness: c.harness ? median(base) : NaN,
    bytes: median(bytes) - (c.harness ? median(baseBytes) : 0),
  };
}

function loop(fn: (i: number) => void): () => void {
  return () => { for (let i = 0; i < BATCH; i++) fn(i); };
}

const nextTick = (): Promise<void> => new Promise((r) => setImmediate(r));

/**
 * Stops a monitor's background work (dev checkpoints with forced GCs, auto-probes): this bench
 * measures the per-request path alone; bench:overhead measures the background work.
 */
function quiet(m: LeakMonitor): void {
  for (const name of ['detector', 'prober']) m.features[name]?.close?.();
}

function fakeReq(route: object): Record<string, unknown> {
  return { method: 'GET', url: '/hello/world', originalUrl: '/hello/world', baseUrl: '', headers: { host: 'x', 'user-agent': 'bench' }, route, app: undefined, socket: { remoteAddress: '127.0.0.1' } };
}

/** A ServerResponse stand-in: an emitter with the fields leakwatch and on-finished read. */
function fakeRes(): EventEmitter & Record<string, unknown> {
  const res = new EventEmitter() as EventEmitter & Record<string, unknown>;
  res.statusCode = 200;
  res.writableEnded = false;
  res.writableFinished = false;
  res.finished = false;
  res.socket = new EventEmitter();
  return res;
}

/**
 * Express gives req and res a new hidden class on every request (two consecutive requests' req
 * never share one: %HaveSameMap, measured in an Express 5 middleware). A fresh prototype per
 * object reproduces that here.
 */
function freshClass<T extends object>(o: T): T {
  return Object.setPrototypeOf(o, Object.create(Object.getPrototypeOf(o) as object)) as T;
}

/** What Node does when a response completes: 'finish', then 'close' on the next tick. */
function complete(res: EventEmitter & Record<string, unknown>): void {
  res.writableEnded = true;
  res.writableFinished = true;
  res.finished = true;
  res.emit('finish');
  res.emit('close');
}

async function main(): Promise<void> {
  const cases: Case[] = [];

  // The floor: any per-route tracker must at least find the route's slot and bump a number.
  const floorMap = new Map<string, { n: number }>([['GET /hello/:name', { n: 0 }]]);
  const floorKey = ['GET /hello/:name'];
  cases.push({ name: 'floor: Map.get + counter++', run: loop((i) => { floorMap.get(floorKey[i & 0])!.n++; }) });

  let sink = 0;
  cases.push({ name: 'primitive: performance.now()', run: loop(() => { sink += performance.now(); }) });
  cases.push({ name: 'primitive: v8.getHeapStatistics()', run: loop(() => { sink += v8.getHeapStatistics().used_heap_size; }) });
  cases.push({ name: 'primitive: process.memoryUsage()', run: loop(() => { sink += process.memoryUsage().heapUsed; }) });
  cases.push({ name: 'primitive: process.getActiveResourcesInfo()', run: loop(() => { sink += process.getActiveResourcesInfo().length; }) });
  const wm = new WeakMap<object, object>();
  const keys = Array.from({ length: BATCH }, () => ({}));
  cases.push({ name: 'primitive: WeakMap set+get+delete', run: loop((i) => { const k = keys[i]; wm.set(k, k); sink += wm.get(k) === k ? 1 : 0; wm.delete(k); }) });

  // Reads from objects that each have a hidden class of their own, as Express's req and res do:
  // a named read misses V8's inline caches, a keyed one (core/prop.ts) does not go to the runtime.
  const fresh = Array.from({ length: BATCH }, () => freshClass(fakeReq({ path: '/x' })));
  cases.push({ name: 'primitive: 3 named reads, new hidden class per object', run: loop((i) => { const o = fresh[i] as { url: string; method: string; baseUrl: string }; sink += o.url.length + o.method.length + o.baseUrl.length; }) });
  cases.push({ name: 'primitive: 3 keyed reads (prop()), new hidden class per object', run: loop((i) => { const o = fresh[i]; sink += prop<string>(o, 'url').length + prop<string>(o, 'method').length + prop<string>(o, 'baseUrl').length; }) });

  const rec = new Recorder(200, 128, 8, 65536);
  const req = fakeReq({ path: '/hello/:name' });
  cases.push({ name: 'Recorder start+finish', run: loop(() => { rec.finish(rec.start(), 'GET', '/hello/:name', 200, false); }) });
  cases.push({ name: 'Recorder start+finish+capture req', run: loop(() => { rec.finish(rec.start(), 'GET', '/hello/:name', 200, false, req as never); }) });
  const recProd = new Recorder(200, 128, 8, 65536, true);
  cases.push({ name: 'Recorder start+finish+capture (production: heap read 1 in 8)', run: loop(() => { recProd.finish(recProd.start(), 'GET', '/hello/:name', 200, false, req as never); }) });
  const rec10 = new Recorder(200, 128, 8, 65536);
  const routes = Array.from({ length: 10 }, (_, i) => `/r${i}/:id`);
  cases.push({ name: 'Recorder start+finish+capture, 10 routes', run: loop((i) => { rec10.finish(rec10.start(), 'GET', routes[i % 10], 200, false, req as never); }) });

  // Express route templates under a mount with parameters: a new `baseUrl` on every request, so
  // the per-baseUrl cache cannot serve them. One sub-app mounted once is served by the route's
  // one-template memo once 64 values agreed; mounted at two such paths, every request walks.
  for (const twice of [false, true]) {
    const express = require('express') as any;
    const app = express();
    const shop = express();
    shop.get('/about', (_q: unknown, s: { end(): void }) => s.end());
    app.use('/shops/:shop', shop);
    if (twice) app.use('/stores/:store', shop);
    const router = routerOf(app);
    const route = (routerOf(shop) as { stack: Array<{ route?: unknown }> }).stack.find((l) => l.route)!.route;
    let n = 0;
    const reqs = (): Array<Record<string, unknown>> => Array.from({ length: BATCH }, () => {
      const v = `s${n++}`;
      const base = twice && n % 2 === 0 ? `/stores/${v}` : `/shops/${v}`;
      return { route, baseUrl: base, originalUrl: base + '/about', url: '/about', app: shop };
    });
    let batchReqs = reqs();
    cases.push({
      name: `Express template, sub-app under a parameter, a new value per request${twice ? ', mounted at two paths (walks)' : ''}`,
      run: () => { for (const r of batchReqs) sink += expressTemplate(r as never, router, '')!.length; batchReqs = reqs(); },
      harness: () => { for (const r of batchReqs) sink += (r.baseUrl as string).length; batchReqs = reqs(); },
    });
  }

  // Express adapter: the real middleware with stand-in req/res, finished the way Node finishes.
  for (const mode of ['dev', 'production'] as const) {
    const mw = leakwatch({ mode, notice: false, autoProbe: false, checkpointIntervalMs: 3_600_000 });
    quiet(mw.monitor);
    const route = { path: '/hello/:name' };
    const next = (): void => {};
    const empty = (_rq: unknown, _rs: unknown, nx: () => void): void => { nx(); };
    const batch = async (fn: (rq: never, rs: never, nx: () => void) => void): Promise<void> => {
      const ress = new Array(BATCH);
      for (let i = 0; i < BATCH; i++) { const rs = fakeRes(); ress[i] = rs; fn(fakeReq(route) as never, rs as never, next); }
      for (let i = 0; i < BATCH; i++) complete(ress[i]);
      await nextTick();
    };
    cases.push({ name: `Express middleware (${mode}), net of an empty middleware`, run: () => batch(mw), harness: () => batch(empty) });
    const batchFresh = async (fn: (rq: never, rs: never, nx: () => void) => void): Promise<void> => {
      const ress = new Array(BATCH);
      for (let i = 0; i < BATCH; i++) { const rs = freshClass(fakeRes()); ress[i] = rs; fn(freshClass(fakeReq(route)) as never, rs as never, next); }
      for (let i = 0; i < BATCH; i++) complete(ress[i]);
      await nextTick();
    };
    cases.push({ name: `Express middleware (${mode}), req/res with a new hidden class each, net of an empty middleware`, run: () => batchFresh(mw), harness: () => batchFresh(empty) });
    process.once('beforeExit', () => mw.close());
  }

  // Fastify adapter: the plugin's real onRequest hook, captured from a stand-in instance, and the
  // response finished the way Node finishes it (the adapter listens on the raw response).
  for (const mode of ['dev', 'production'] as const) {
    type Hook = (rq: unknown, rp: unknown, done: () => void) => void | Promise<void>;
    const hooks: Record<string, Hook> = {};
    const fake = {
      decorate(_name: string, m: LeakMonitor): void { quiet(m); },
      addHook(name: string, fn: Hook): void { hooks[name] = fn; },
      server: { address: () => null },
    };
    await (fastifyLeakwatch as unknown as (f: unknown, o: unknown) => Promise<void>)(fake, { mode, notice: false, autoProbe: false, checkpointIntervalMs: 3_600_000 });
    let calls = 0;
    const done = (): void => { calls++; };
    const emptyHook: Hook = (_rq, _rp, d) => { d(); };
    const batch = (onRequest: Hook): void => {
      const ress = new Array(BATCH);
      for (let i = 0; i < BATCH; i++) {
        const raw = fakeRes();
        ress[i] = raw;
        const request = { raw: { url: '/hello/world', method: 'GET', headers: { host: 'x' } }, method: 'GET', routeOptions: { url: '/hello/:name' }, body: undefined, ip: '127.0.0.1' };
        // The adapter reads the request back from the reply when the response is done, as
        // Fastify's own Reply carries it (without it every request threw inside leakwatch, and
        // this row measured the exception and fault path: 3.8 µs).
        void onRequest(request, { raw, statusCode: 200, request }, done);
      }
      for (let i = 0; i < BATCH; i++) complete(ress[i]);
    };
    cases.push({ name: `Fastify plugin (${mode}), net of an empty onRequest hook`, run: () => batch(hooks.onRequest), harness: () => batch(emptyHook) });
    process.once('beforeExit', () => { void hooks.onClose?.(undefined, undefined, done); sink += calls; });
  }

  const rows: Row[] = [];
  for (const c of cases) {
    rows.push(await measure(c));
    process.stderr.write(`  ${c.name}: ${fix(rows.at(-1)!.ns, 1)} ns\n`);
  }
  const floor = rows[0].ns;
  console.log(`\nbench:hotpath  ${new Date().toISOString()}  node ${process.version}  batches ${BATCHES} × ${BATCH}\n`);
  console.log(table(['per request', 'ns (median)', '× floor', 'with harness ns', 'harness alone ns', 'heap growth B (approx.)'],
    rows.map((r) => [r.name, fix(r.ns, 1), fix(r.ns / floor, 1), Number.isNaN(r.harness) ? '' : fix(r.gross, 1), Number.isNaN(r.harness) ? '' : fix(r.harness, 1), fix(Math.max(0, r.bytes), 0)])));
  console.log('\nWall-clock, in-process, median over batches. "net of" rows: the same batch through an empty middleware/hook (stand-in req/res objects, finish and close emitted) is measured alternately and subtracted. Heap growth: median used_heap_size growth per request over batches without a GC (approximate: V8 counts new-space use by pages).');
  const file = writeResult('hotpath', { machine: machine(), batch: BATCH, batches: BATCHES, rows, sink });
  console.log(`raw figures in ${file}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
