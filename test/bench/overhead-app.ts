/**
 * One hello-world server per process for `bench:overhead`:
 *   node dist/test/bench/overhead-app.js <express|fastify> <variant>
 * Routes: `GET /hello/:name` answers `{ hello: name }`; `GET /alloc/:name` allocates about 50 KB of
 * short-lived objects first. Prints `PORT <n>` once listening. On stdin, the line `cpu` is answered
 * with `CPU <user µs> <system µs>` (process.cpuUsage), so the driver can read CPU time per request
 * without touching the server's request path. Exits on SIGTERM/SIGINT or when stdin closes.
 */
import path from 'node:path';
import readline from 'node:readline';
import type { AddressInfo } from 'node:net';


const peersDir = path.resolve(__dirname, '..', '..', '..', 'test', 'bench', 'peers', 'node_modules');

/** ~50 KB of garbage, made of the small objects and strings a real handler makes. */
export function churn(name: string): number {
  const rows: Array<{ id: number; label: string; tags: number[] }> = [];
  for (let i = 0; i < 300; i++) rows.push({ id: i, label: name + ':' + i, tags: [i, i + 1] });
  let n = 0;
  for (const r of rows) n += r.label.length + r.tags.length;
  return n;
}

type Variant = string;

const KEEP_ALIVE_MS = 3_600_000;

function log(): { info(m: string): void; warn(m: string): void } {
  // leakwatch's startup notice goes to stderr so that stdout carries only the protocol lines.
  return { info: (m) => process.stderr.write(m + '\n'), warn: (m) => process.stderr.write(m + '\n') };
}

/**
 * The leakwatch variants and their options over the defaults: dev defaults; dev without the
 * sampling heap profiler; dev sampling every 4 or 8 KB; dev that never steps back under load
 * (`loadRate: 0`, the A/B of the load guard); dev with the guard engaged at the rates callgrind
 * can drive (25–50 req/s: `loadRate: 5`), to count its steady per-request cost in instructions;
 * dev with checkpoints capped at a tenth of the app's CPU (`cpuBudget: 0.1`), also sampling every
 * 8 KB; production. `-nohold` variants also drop the Fastify hold (see withoutHold).
 */
const LEAKWATCH_VARIANTS: Record<string, Record<string, unknown>> = {
  'leakwatch-dev': {},
  'leakwatch-dev-nosampling': { samplingInterval: 0 },
  'leakwatch-dev-4096': { samplingInterval: 4096 },
  'leakwatch-dev-8192': { samplingInterval: 8192 },
  'leakwatch-dev-noguard': { loadRate: 0 },
  // Dev mode without its calm: the full pace even while every route reads stable (as before it).
  'leakwatch-dev-calmoff': { calmBudget: Infinity },
  // Dev mode with a calm ten times stricter than the default (0.05): its checkpoints ten times rarer.
  'leakwatch-dev-calm0005': { calmBudget: 0.005 },
  'leakwatch-dev-budget01': { cpuBudget: 0.1 },
  'leakwatch-dev-budget01-8192': { cpuBudget: 0.1, samplingInterval: 8192 },
  'leakwatch-dev-nohold': {},
  'leakwatch-dev-underload': { loadRate: 5 },
  'leakwatch-dev-underload-nohold': { loadRate: 5 },
  'leakwatch-dev-underload-nosampling': { loadRate: 5, samplingInterval: 0 },
  // Diagnosis: the profiler's per-request cost alone. No load guard, and a CPU budget so small that
  // no checkpoint follows the first, so nothing time-based lands in the measured runs.
  'leakwatch-dev-nocp-0': { loadRate: 0, cpuBudget: 1e-9, samplingInterval: 0 },
  'leakwatch-dev-nocp-2048': { loadRate: 0, cpuBudget: 1e-9, samplingInterval: 2048 },
  'leakwatch-dev-nocp-8192': { loadRate: 0, cpuBudget: 1e-9, samplingInterval: 8192 },
  'leakwatch-dev-nocp-32768': { loadRate: 0, cpuBudget: 1e-9, samplingInterval: 32768 },
  'leakwatch-prod': { enabled: true },
  // Production with the per-request heap and resource readings taken from 1 request in 64, not 8.
  'leakwatch-prod-s64': { enabled: true, sampleEvery: 64 },
  'leakwatch-prod-s16': { enabled: true, sampleEvery: 16 },
  // Production with the sampling of the seventh round and before (one request in 8).
  'leakwatch-prod-s8': { enabled: true, sampleEvery: 8 },
};

/**
 * Diagnosis: LEAKWATCH_DIAG_CLOSE=detector,metrics,… closes those features of the monitor once
 * mounted, and `gc` in the list releases the GC observer, to bisect what costs what.
 */
let mounted: { features: Record<string, unknown> } | undefined;

function diagnose(monitor: { features: Record<string, { close?(): void }> }): void {
  // `stats` on stdin prints the detector's checkpoint figures (bench diagnosis).
  mounted = monitor;
  for (const name of (process.env.LEAKWATCH_DIAG_CLOSE ?? '').split(',').filter((n) => n !== '')) {
    if (name === 'gc') (require('../../src/core/gcwatch') as typeof import('../../src/core/gcwatch')).gcWatch.release();
    else if (name === 'closedflag') (monitor.features.detector as unknown as { closed: boolean }).closed = true;
    else if (name === 'gclisten') (monitor.features.detector as unknown as { offGc?: () => void }).offGc?.();
    else if (name === 'warning') process.off('warning', (monitor.features.detector as unknown as { warningListener: () => void }).warningListener);
    else monitor.features[name]?.close?.();
  }
}

function leakwatchOptions(variant: Variant): Record<string, unknown> {
  return { logger: log(), ...LEAKWATCH_VARIANTS[variant] };
}

/**
 * `leakwatch-…@/path/to/checkout`: the same variant with leakwatch loaded from another checkout's
 * build (its `dist/`), so that two commits can be compared side by side in one run.
 */
function splitVariant(v: Variant): { variant: Variant; adapters: string } {
  const at = v.indexOf('@');
  if (at < 0) return { variant: v, adapters: path.join(__dirname, '..', '..', 'src') };
  return { variant: v.slice(0, at), adapters: path.join(v.slice(at + 1), 'dist', 'src') };
}

/**
 * Dev defaults as they were before dev mode held the last request's objects across checkpoints
 * (LeakMonitor.holdsLast): the A/B for what that hold saves.
 */
function withoutHold(monitor: { holdsLast: boolean }): void {
  Object.defineProperty(monitor, 'holdsLast', { value: false });
}

async function expressApp(full: Variant): Promise<() => Promise<number>> {
  const { variant, adapters } = splitVariant(full);
  const express = require('express');
  const app = express();
  const closers: Array<() => void> = [];
  switch (variant in LEAKWATCH_VARIANTS ? 'leakwatch' : variant) {
    case 'bare': break;
    case 'leakwatch': {
      const { leakwatch } = require(path.join(adapters, 'express', 'index'));
      const mw = leakwatch(leakwatchOptions(variant));
      if (variant.endsWith('-nohold')) withoutHold(mw.monitor);
      diagnose(mw.monitor);
      closers.push(() => mw.close());
      app.use(mw);
      break;
    }
    case 'empty-next': {
      // The floor of mounting anything at all on Express: a middleware that only calls next().
      app.use((_req: unknown, _res: unknown, next: () => void) => { next(); });
      break;
    }
    case 'empty-middleware': {
      // The floor of any per-request middleware on Express: one that listens for the response's end.
      const done = (): void => {};
      app.use((_req: unknown, res: { on(e: string, f: () => void): void }, next: () => void) => { res.on('finish', done); next(); });
      break;
    }
    case 'empty-close': {
      // The floor of leakwatch's own design on Express: a middleware that puts one shared listener
      // on the response's 'close'.
      const done = (): void => {};
      app.use((_req: unknown, res: { on(e: string, f: () => void): void }, next: () => void) => { res.on('close', done); next(); });
      break;
    }
    case 'empty-dc': {
      // The floor of reading the response's end from Node's 'http.server.response.finish'
      // diagnostics channel instead of a listener per response: a middleware that keeps the
      // response in a table of requests in flight, and a subscriber that takes it out.
      const pending = new WeakMap<object, number>();
      const table: object[] = [];
      app.use((_req: unknown, res: object, next: () => void) => { pending.set(res, table.length); table.push(res); next(); });
      subscribeFinish((res) => { const i = pending.get(res); if (i === undefined) return; pending.delete(res); const last = table.pop()!; if (last !== res) { table[i] = last; pending.set(last, i); } });
      break;
    }
    case 'handle-wrap': {
      // The floor of recording from a wrapper around app.handle, which sees Node's own req and res
      // before Express changes their prototypes, instead of from a middleware in the router.
      const orig = app.handle;
      app.handle = function handle(this: unknown, req: unknown, res: unknown, next: unknown) { return orig.call(this, req, res, next); };
      break;
    }
    case 'handle-close': {
      // The same with one shared listener on the response's 'close'.
      const orig = app.handle;
      const done = (): void => {};
      const on = require('node:events').EventEmitter.prototype.on;
      app.handle = function handle(this: unknown, req: unknown, res: unknown, next: unknown) { on.call(res, 'close', done); return orig.call(this, req, res, next); };
      break;
    }
    case 'express-prom-bundle': {
      const promBundle = require('express-prom-bundle');
      app.use(promBundle({ includeMethod: true, includePath: true }));
      break;
    }
    case 'express-status-monitor': {
      app.use(require('express-status-monitor')());
      break;
    }
    case 'swagger-stats': {
      const swStats = require(path.join(peersDir, 'swagger-stats'));
      app.use(swStats.getMiddleware({}));
      break;
    }
    default: throw new Error(`unknown express variant ${variant}`);
  }
  inRequestGc(app);
  app.get('/hello/:name', (req: { params: { name: string } }, res: { json(v: unknown): void }) => {
    lateLeak?.();
    res.json({ hello: req.params.name });
  });
  app.get('/alloc/:name', (req: { params: { name: string } }, res: { json(v: unknown): void }) => {
    res.json({ hello: req.params.name, n: churn(req.params.name) });
  });
  return () => new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port));
    // Callgrind slows everything ~50×: Node's 5 s keep-alive timeout would drop the driver's
    // connections between runs.
    server.keepAliveTimeout = KEEP_ALIVE_MS;
  });
}

async function fastifyApp(full: Variant): Promise<() => Promise<number>> {
  const { variant, adapters } = splitVariant(full);
  const fastify = require('fastify')({ logger: false, keepAliveTimeout: KEEP_ALIVE_MS });
  switch (variant in LEAKWATCH_VARIANTS ? 'leakwatch' : variant) {
    case 'bare': break;
    case 'leakwatch': {
      const { fastifyLeakwatch } = require(path.join(adapters, 'fastify', 'index'));
      await fastify.register(fastifyLeakwatch, leakwatchOptions(variant));
      if (variant.endsWith('-nohold')) withoutHold(fastify.leakwatch);
      diagnose(fastify.leakwatch);
      break;
    }
    case 'empty-close': {
      // The floor of leakwatch's own design on Fastify: one callback onRequest hook that puts one
      // shared listener on the raw response's 'close', and nothing else.
      const done = (): void => {};
      fastify.addHook('onRequest', (_req: unknown, reply: { raw: { on(e: string, f: () => void): void } }, next: () => void) => { reply.raw.on('close', done); next(); });
      break;
    }
    case 'empty-dc': {
      // The same floor on Fastify (see the Express variant): the state rides on the raw response.
      const k = Symbol('slot');
      const table: Array<Record<symbol, number>> = [];
      fastify.addHook('onRequest', (_req: unknown, reply: { raw: Record<symbol, number> }, next: () => void) => { const res = reply.raw; res[k] = table.length; table.push(res); next(); });
      subscribeFinish((r) => { const res = r as Record<symbol, number>; const i = res[k]; if (i === undefined || i < 0) return; res[k] = -1; const last = table.pop()!; if (last !== res) { table[i] = last; last[k] = i; } });
      break;
    }
    case 'empty-onsend': {
      // The floor of reading a response's end from an onSend hook instead of a listener: an
      // onRequest hook that marks the raw response, and an onSend hook that clears the mark.
      const k = Symbol('slot');
      fastify.addHook('onRequest', (_req: unknown, reply: { raw: Record<symbol, number> }, next: () => void) => { reply.raw[k] = 1; next(); });
      fastify.addHook('onSend', (_req: unknown, reply: { raw: Record<symbol, number> }, _payload: unknown, next: () => void) => { reply.raw[k] = 0; next(); });
      break;
    }
    case 'one-hook': {
      // The floor of mounting anything at all on Fastify: one empty callback onRequest hook.
      fastify.addHook('onRequest', (_req: unknown, _reply: unknown, done: () => void) => { done(); });
      break;
    }
    case 'empty-hooks': {
      // The floor of any per-request plugin on Fastify: an onRequest and an onResponse hook that
      // do nothing (callback style, the cheaper kind).
      fastify.addHook('onRequest', (_req: unknown, _reply: unknown, done: () => void) => { done(); });
      fastify.addHook('onResponse', (_req: unknown, _reply: unknown, done: () => void) => { done(); });
      break;
    }
    case 'fastify-metrics': {
      const metrics = require('fastify-metrics');
      await fastify.register(metrics.default ?? metrics, { endpoint: '/metrics' });
      break;
    }
    default: throw new Error(`unknown fastify variant ${variant}`);
  }
  fastify.get('/hello/:name', async (req: { params: { name: string } }) => { lateLeak?.(); return { hello: req.params.name }; });
  fastify.get('/alloc/:name', async (req: { params: { name: string } }) => ({ hello: req.params.name, n: churn(req.params.name) }));
  return async () => {
    await fastify.listen({ port: 0, host: '127.0.0.1' });
    return (fastify.server.address() as AddressInfo).port;
  };
}

const noop = (): void => {};

/**
 * Diagnosis: with LEAKWATCH_DIAG_LEAK_AT=<s>, `/hello` starts keeping LEAKWATCH_DIAG_LEAK_BYTES
 * (default 1,024) per request that many seconds after start: how soon does the calm see it?
 */
const LEAK_AT = Number(process.env.LEAKWATCH_DIAG_LEAK_AT ?? Infinity) * 1000 + Date.now();
const LEAK_BYTES = Number(process.env.LEAKWATCH_DIAG_LEAK_BYTES ?? 1024);
const leaked: string[] = [];
// Undefined unless asked for: the benchmarks' handlers then pay one property test, not a clock read.
const lateLeak = Number.isFinite(LEAK_AT) ? (): void => { if (Date.now() >= LEAK_AT) leaked.push('x'.repeat(LEAK_BYTES) + leaked.length); } : undefined;

/**
 * Diagnosis: a forced GC every 20 s run from inside a request (`gc20s-inreq`: before the route
 * runs; `gc20s-finish`: in the response's 'finish'), so that one request's objects are alive
 * across it. Does the app's JIT keep its code then?
 */
function inRequestGc(app: { use(fn: (req: unknown, res: { once(e: string, f: () => void): void }, next: () => void) => void): void }): void {
  const what = process.env.LEAKWATCH_DIAG_BARE;
  if (what !== 'gc20s-inreq' && what !== 'gc20s-finish') return;
  const { forceFullGc } = require('../../src/core/gc') as typeof import('../../src/core/gc');
  let due = false;
  setInterval(() => { due = true; }, 20_000).unref();
  app.use((_req, res, next) => {
    if (due) {
      due = false;
      if (what === 'gc20s-inreq') forceFullGc();
      else res.once('finish', () => forceFullGc());
    }
    next();
  });
}

/** Subscribes to Node's end-of-response channel (which Node's own http server module holds). */
function subscribeFinish(fn: (res: object) => void): void {
  const dc = require('node:diagnostics_channel') as typeof import('node:diagnostics_channel');
  dc.subscribe('http.server.response.finish', (m) => fn((m as { response: object }).response));
}

/**
 * Diagnosis without leakwatch: what dev mode does, one piece at a time. `gcflag` sets
 * --expose-gc at run time, `context` makes a second V8 context, `gc` forces a full GC every
 * 200 ms the way checkpoints do (through src/core/gc.ts, so both of the above as well).
 */
function bareDiagnosis(what: string | undefined): void {
  if (what === 'gcflag') require('node:v8').setFlagsFromString('--expose-gc');
  else if (what === 'context') require('node:vm').runInNewContext('1');
  else if (what === 'gc') {
    const { forceFullGc } = require('../../src/core/gc') as typeof import('../../src/core/gc');
    setInterval(forceFullGc, 200).unref();
  } else if (what === 'gc20s') {
    // A forced GC every 20 s, about the calm's pace: what the app's JIT loses to each.
    const { forceFullGc } = require('../../src/core/gc') as typeof import('../../src/core/gc');
    setInterval(forceFullGc, 20_000).unref();
  } else if (what === 'gc3s') {
    const { forceFullGc } = require('../../src/core/gc') as typeof import('../../src/core/gc');
    const t = setInterval(forceFullGc, 200);
    setTimeout(() => clearInterval(t), 3000);
  } else if (what === 'gc3s-hold') {
    // The same, holding one process.nextTick() object across the GCs (see LeakMonitor).
    process.nextTick(() => { (globalThis as { __held?: unknown }).__held = require('node:async_hooks').executionAsyncResource(); });
    const { forceFullGc } = require('../../src/core/gc') as typeof import('../../src/core/gc');
    const t = setInterval(forceFullGc, 200);
    setTimeout(() => clearInterval(t), 3000);
  } else if (what === 'gc5') {
    const { forceFullGc } = require('../../src/core/gc') as typeof import('../../src/core/gc');
    let n = 0;
    const t = setInterval(() => { forceFullGc(); if (++n === 5) clearInterval(t); }, 200);
  } else if (what === 'natural') {
    // Natural mark-compacts: keep ~150 MB alive for a while, then let it go.
    let keep: unknown[] = [];
    let n = 0;
    const t = setInterval(() => {
      for (let i = 0; i < 2000; i++) keep.push({ a: i, b: String(i), c: [i] });
      if (++n % 100 === 0) keep = [];
      if (n === 400) clearInterval(t);
    }, 5);
  }
}

async function main(): Promise<void> {
  const [framework, variant] = process.argv.slice(2);
  const listen = framework === 'express' ? await expressApp(variant) : framework === 'fastify' ? await fastifyApp(variant) : undefined;
  if (listen === undefined) throw new Error(`unknown framework ${framework}`);
  const port = await listen();
  bareDiagnosis(process.env.LEAKWATCH_DIAG_BARE);
  process.stdout.write(`PORT ${port}\n`);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on('line', (line) => {
    if (line.trim() === 'cpu') {
      const u = process.cpuUsage();
      process.stdout.write(`CPU ${u.user} ${u.system}\n`);
    } else if (line.trim() === 'stats') {
      const d = mounted?.features.detector as unknown as Record<string, number> | undefined;
      const calm = (mounted as { processFindings?: { calm?: { active: boolean; episodes: number } } } | undefined)?.processFindings?.calm;
      const pick = d === undefined ? {} : { taken: d.taken, costMs: d.costMs, gcMs: d.gcMs, profileMs: d.profileMs, analyzeMs: d.analyzeMs, calm: calm?.active ? 1 : 0, calms: calm?.episodes ?? 0, nudges: (calm as { nudges?: number } | undefined)?.nudges, reason: (calm as { reason?: string } | undefined)?.reason, aftermath: d.aftermath };
      process.stdout.write(`STATS ${JSON.stringify(pick)}\n`);
    } else if (line.trim() === 'nexttick') {
      // Diagnosis: the cost of one process.nextTick() in this process's current JIT state (its
      // literal can be stuck in V8's runtime; see README, Performance). Small batches, drained
      // in between, so that no scavenge lands in a timed batch; the median batch.
      void (async () => {
        const per: number[] = [];
        for (let b = 0; b < 200; b++) {
          const t0 = process.hrtime.bigint();
          for (let i = 0; i < 200; i++) process.nextTick(noop);
          per.push(Number(process.hrtime.bigint() - t0) / 200);
          await new Promise((r) => setImmediate(r));
        }
        per.sort((a, b) => a - b);
        process.stdout.write(`NEXTTICK ${per[per.length >> 1].toFixed(1)}\n`);
      })();
    }
  });
  rl.on('close', () => process.exit(0));
  const quit = (): void => process.exit(0);
  process.on('SIGTERM', quit);
  process.on('SIGINT', quit);
}

if (require.main === module) {
  main().catch((e) => { process.stderr.write(String(e?.stack ?? e) + '\n'); process.exit(1); });
}
