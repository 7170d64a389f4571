import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import express from 'express';
import Fastify from 'fastify';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import type { LeakMonitor } from '../../src/core/monitor';
import type { Detector } from '../../src/core/detector';
import { listen, close, mulberry32 } from '../helpers';
import { Gate } from '../../src/core/gate';

// End to end on a real loopback server: one route keeps 20 KB per request (a flat hex string),
// one keeps nothing. 20 KB/request is over a thousand times the checkpoint noise per request
// measured on the zoo (10–25 KB per checkpoint spread over ~100 requests), so the margins do not
// depend on the machine's load; traffic is seeded so every run sends the same sequence.


// These tests drive traffic flat out (bursts of thousands of requests per second) to exercise the
// checkpoints themselves; at a developer's pace the load guard would never engage, so it is off
// here (test/core/load-guard.test.ts covers it).
const OPTIONS = { notice: false, mode: 'dev' as const, autoProbe: false, checkpointIntervalMs: 200, workers: 4, loadRate: 0 };

/** Sends seeded GETs at concurrency 4 with a mix re-drawn every 60 requests. */
async function drive(port: number, total: number, rng: () => number, agent: http.Agent): Promise<void> {
  let sent = 0;
  let leakShare = 0.5;
  const one = (path: string): Promise<void> => new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
      assert.equal(res.statusCode, 200);
      res.resume();
      res.on('end', () => resolve());
    }).on('error', reject);
  });
  const worker = async (): Promise<void> => {
    while (sent < total) {
      if (sent % 60 === 0) leakShare = 0.1 + 0.8 * rng();
      sent++;
      await one(rng() < leakShare ? '/leak' : '/noop/' + Math.floor(rng() * 5));
    }
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
}

interface Expect { method: string; low: number; high: number }
const REGRESSION: Expect = { method: 'checkpoint-regression', low: 12_000, high: 30_000 };

async function scenario(monitor: LeakMonitor, port: number, diag: (m: string) => void, expect: Expect = REGRESSION): Promise<void> {
  const rng = mulberry32(42);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const detector = monitor.features.detector as Detector;
  let noopEverGrowing = false;
  let sent = 0;
  try {
    // Up to 6,000 requests; in practice it is growing after about 1,500 (the regression needs a
    // dozen checkpoints more than it has columns).
    while (sent < 6000) {
      await drive(port, 300, rng, agent);
      sent += 300;
      await new Promise((r) => setTimeout(r, 250)); // let a time-based checkpoint run
      const noop = monitor.route('GET', '/noop/:id');
      if (noop?.verdict === 'growing') noopEverGrowing = true;
      if (monitor.route('GET', '/leak')?.verdict === 'growing' && sent >= 1800) break;
    }
  } finally {
    agent.destroy();
  }
  const leak = monitor.route('GET', '/leak')!;
  const noop = monitor.route('GET', '/noop/:id')!;
  assert.equal(leak.verdict, 'growing', `leak route: ${leak.verdictReason} after ${sent} requests, ${detector.taken} checkpoints`);
  assert.equal(noopEverGrowing, false, 'the no-op route was never growing');
  assert.notEqual(noop.verdict, 'growing', noop.verdictReason);
  // The regression's leak keeps 20,496 bytes (20,480 characters + a 16-byte header), the sampling
  // profiler's 1,040; wide margins on purpose (the sampled one is over 5 standard errors wide).
  const est = leak.estimate!;
  assert.ok(est.bytesPerRequest > expect.low && est.bytesPerRequest < expect.high, `estimate ${est.bytesPerRequest}`);
  assert.ok(est.low <= est.bytesPerRequest && est.bytesPerRequest <= est.high + 1);
  assert.equal(est.basis.method, expect.method);
  assert.ok(est.basis.checkpoints >= (expect === REGRESSION ? 10 : 6));
  // With the profiler's per-route levels the dashboard can say what was ruled out: a leak's level never falls back.
  if (expect !== REGRESSION) assert.equal(leak.findings.dataDependent, false);
  const projection = leak.findings.projection as { text: string; workers: number };
  assert.match(projection.text, /B\/request → .* after 1,000 requests; .* after 10,000 requests across 4 workers/);
  diag(`growing after ${sent} requests, ${detector.taken} checkpoints; estimate ${Math.round(est.bytesPerRequest)} B (${Math.round(est.low)}–${Math.round(est.high)})`);
  const pf = monitor.processFindings;
  assert.ok(pf.checkpoints >= 10 && (pf.liveHeapBytes ?? 0) > 1e6 && pf.history.length > 0);
  assert.ok(detector.taken >= 10);
}

function leakyRoutes(bytes = 10240): { keep: string[]; leak: () => { kept: number } } {
  const keep: string[] = [];
  return { keep, leak: () => { keep.push(randomBytes(bytes).toString('hex')); return { kept: keep.length }; } };
}

/** The checkpoint regression alone: the sampling heap profiler off. */
const REGRESSION_ONLY = { ...OPTIONS, samplingInterval: 0 };
const SAMPLED: Expect = { method: 'sampling-heap-profiler', low: 600, high: 1_700 };

test('Express 5: a 20 KB/request leak is growing with an estimate near 20 KB; a no-op route never is', async (t) => {
  const app = express();
  const mw = leakwatch(REGRESSION_ONLY);
  app.use(mw);
  const z = leakyRoutes();
  app.get('/leak', (_req, res) => { res.json(z.leak()); });
  app.get('/noop/:id', (req, res) => { res.json({ id: req.params.id }); });
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(async () => { mw.close(); await close(server); z.keep.length = 0; });
  await scenario(mw.monitor, port, (m) => t.diagnostic(m));
});

test('Fastify 5: the same leak is growing and the no-op route is not', async (t) => {
  const app = Fastify();
  await app.register(fastifyLeakwatch, REGRESSION_ONLY);
  const z = leakyRoutes();
  app.get('/leak', async () => z.leak());
  app.get('/noop/:id', async (req) => ({ id: (req.params as { id: string }).id }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => { await app.close(); z.keep.length = 0; });
  const monitor = (app as unknown as { leakwatch: LeakMonitor }).leakwatch;
  await scenario(monitor, (app.server.address() as { port: number }).port, (m) => t.diagnostic(m));
});

// The sampling heap profiler (on by default in dev mode) charges live objects to the route whose
// handler allocated them: a 1 KB/request leak, twenty times smaller than the one above and well
// under the checkpoint noise, is found with an estimate from the profiler.
test('sampling heap profiler, Express 5: a 1 KB/request leak is growing, estimated from the profiler; the no-op route never is', async (t) => {
  const app = express();
  const mw = leakwatch(OPTIONS);
  app.use(mw);
  const z = leakyRoutes(512);
  app.get('/leak', (_req, res) => { res.json(z.leak()); });
  app.get('/noop/:id', (req, res) => { res.json({ id: req.params.id }); });
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(async () => { mw.close(); await close(server); z.keep.length = 0; });
  await scenario(mw.monitor, port, (m) => t.diagnostic(m), SAMPLED);
});

test('sampling heap profiler, Fastify 5: a 1 KB/request leak is growing, estimated from the profiler; the no-op route never is', async (t) => {
  const app = Fastify();
  await app.register(fastifyLeakwatch, OPTIONS);
  const z = leakyRoutes(512);
  app.get('/leak', async () => z.leak());
  app.get('/noop/:id', async (req) => ({ id: (req.params as { id: string }).id }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => { await app.close(); z.keep.length = 0; });
  const monitor = (app as unknown as { leakwatch: LeakMonitor }).leakwatch;
  await scenario(monitor, (app.server.address() as { port: number }).port, (m) => t.diagnostic(m), SAMPLED);
});

test('the detector never overwrites a verdict the probe set to leaking, and stops on close', async () => {
  const app = express();
  const mw = leakwatch(OPTIONS);
  app.use(mw);
  app.get('/noop/:id', (req, res) => { res.json({ id: req.params.id }); });
  app.get('/leak', (_req, res) => { res.json({}); }); // keeps nothing here
  const server = http.createServer(app);
  const port = await listen(server);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  await drive(port, 40, mulberry32(1), agent);
  const stats = mw.monitor.route('GET', '/noop/:id')!;
  stats.verdict = 'leaking';
  stats.verdictReason = 'confirmed by a probe';
  const detector = mw.monitor.features.detector as Detector;
  const before = detector.taken;
  assert.equal(await detector.checkpoint(), true);
  assert.equal(detector.taken, before + 1);
  assert.equal(stats.verdict, 'leaking');
  assert.equal(stats.verdictReason, 'confirmed by a probe');
  mw.close();
  const after = detector.taken;
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(detector.taken, after, 'no checkpoint after close');
  agent.destroy();
  await close(server);
});

test('production mode never forces a GC: no timer, checkpoints only at natural mark-sweeps', async () => {
  const app = express();
  const mw = leakwatch({ ...OPTIONS, mode: 'production' });
  app.use(mw);
  app.get('/noop/:id', (req, res) => { res.json({ id: req.params.id }); });
  app.get('/leak', (_req, res) => { res.json({}); });
  const server = http.createServer(app);
  const port = await listen(server);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  try {
    await drive(port, 400, mulberry32(2), agent);
    await new Promise((r) => setTimeout(r, 400));
    const pf = mw.monitor.processFindings;
    for (const [, , forced] of pf.history) assert.equal(forced, 0, 'a forced GC was recorded in production mode');
    const detector = mw.monitor.features.detector as Detector;
    assert.equal(detector.costMs, 0, 'no checkpoint time spent');
    assert.equal(mw.monitor.gate.held, 0, 'the gate never held a request');
  } finally {
    agent.destroy();
    mw.close();
    await close(server);
  }
});

test('exact object counts: a listener per request (after Node warns) and a global per request are growing', async (t) => {
  const { EventEmitter } = await import('node:events');
  const bus = new EventEmitter();
  const made: string[] = [];
  let seq = 0;
  const app = express();
  // Should a calm begin before the weak globals series is significant, its checkpoints stay a
  // second or two apart here (they are charged 20 times their CPU: the default budget would space
  // them by most of this test's run). This test is about the counts, not the calm's pace.
  const mw = leakwatch({ ...OPTIONS, calmBudget: 5 });
  app.use(mw);
  // Tiny leaks: a listener closure, and one new global: bytes far below the heap noise.
  app.get('/leak', (_req, res) => { bus.on('tick', () => seq); res.json({ n: bus.listenerCount('tick') }); });
  app.get('/noop/:id', (req, res) => {
    const name = `LeakwatchTestGlobal${seq++}`;
    if (req.params.id === '0') { (globalThis as Record<string, unknown>)[name] = 1; made.push(name); }
    res.json({ id: req.params.id });
  });
  const server = http.createServer(app);
  const port = await listen(server);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  const warnings: string[] = [];
  const onWarning = (w: Error): void => { warnings.push(w.name); };
  process.on('warning', onWarning);
  t.after(async () => {
    process.off('warning', onWarning);
    agent.destroy();
    mw.close();
    await close(server);
    bus.removeAllListeners();
    for (const n of made) delete (globalThis as Record<string, unknown>)[n];
  });
  const rng = mulberry32(7);
  let sent = 0;
  const leak = (): string | undefined => mw.monitor.route('GET', '/leak')?.verdict;
  while (sent < 9000 && !(leak() === 'growing' && mw.monitor.route('GET', '/noop/:id')?.verdict === 'growing')) {
    await drive(port, 300, rng, agent);
    sent += 300;
    await new Promise((r) => setTimeout(r, 250));
  }
  assert.ok(warnings.includes('MaxListenersExceededWarning'), 'Node warned');
  const l = mw.monitor.route('GET', '/leak')!;
  assert.equal(l.verdict, 'growing', l.verdictReason);
  assert.match(l.verdictReason, /listeners:EventEmitter\.tick count grows/);
  assert.deepEqual((l.findings.objectGrowth as { type: string }).type, 'listeners:EventEmitter.tick');
  const g = mw.monitor.route('GET', '/noop/:id')!;
  assert.equal(g.verdict, 'growing', g.verdictReason);
  assert.match(g.verdictReason, /globals count grows/);
  t.diagnostic(`both growing after ${sent} requests`);
});

test('gate.admitOne lets exactly one held request in while the gate stays closed, only for its owner', async () => {
  const gate = new Gate();
  const token = gate.close(5_000)!;
  const order: number[] = [];
  for (let i = 0; i < 3; i++) void gate.admit()!.then(() => order.push(i));
  assert.equal(gate.queued, 3);
  assert.equal(gate.admitOne(Symbol('not the owner')), false);
  assert.equal(gate.admitOne(token), true);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [0]);
  assert.equal(gate.closed, true);
  assert.equal(gate.queued, 2);
  gate.open(token);
  await new Promise((r) => setImmediate(r));
  assert.deepEqual(order, [0, 1, 2]);
  assert.equal(gate.admitOne(token), false); // open: nothing to do
});

test('sampled isolation (opt-in): single requests run alone are charged to their own route; nothing is lost', async (t) => {
  const app = express();
  const mw = leakwatch({ ...OPTIONS, checkpointIntervalMs: 100 });
  app.use(mw);
  // 200 KB per request: ten times the largest stray reading seen in an isolated sample (±15 KB).
  const keep: string[] = [];
  app.get('/big', (_req, res) => { keep.push(randomBytes(102_400).toString('hex')); res.json({ n: keep.length }); });
  app.get('/noop/:id', (req, res) => { res.json({ id: req.params.id }); });
  const server = http.createServer(app);
  const port = await listen(server);
  const detector = mw.monitor.features.detector as Detector;
  detector.isolateBudgetMs = 40;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(async () => { agent.destroy(); mw.close(); await close(server); keep.length = 0; });
  const rng = mulberry32(7);
  const big = (): number[] => detector.samplesOf(mw.monitor.route('GET', '/big')!).heap;
  const noop = (): number[] => detector.samplesOf(mw.monitor.route('GET', '/noop/:id')!).heap;
  let sent = 0;
  // Unthrottled keep-alive clients: a replacement request reaches the gate right after each one.
  while (sent < 8000 && (big().length < 5 || noop().length < 5)) {
    const worker = async (): Promise<void> => {
      for (let i = 0; i < 50; i++) {
        const path = rng() < 0.3 ? '/big' : '/noop/' + Math.floor(rng() * 5);
        await new Promise<void>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port, path, agent }, (res) => {
            assert.equal(res.statusCode, 200);
            res.resume();
            res.on('end', () => resolve());
          }).on('error', reject);
        });
      }
    };
    await Promise.all([worker(), worker(), worker(), worker()]);
    sent += 200;
  }
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  t.diagnostic(`${detector.isolatedSamples} isolated samples after ${sent} requests; /big median ${med(big())} B (${big().length}), /noop median ${med(noop())} B (${noop().length})`);
  assert.ok(big().length >= 5 && noop().length >= 5, `samples: big ${big().length}, noop ${noop().length}`);
  // 204,816 bytes per /big request (204,800 characters + a 16-byte header); single readings have
  // been seen 85 KB off, so the margins are wide: what is shown is that the bytes land on /big.
  assert.ok(med(big()) > 100_000 && med(big()) < 300_000, `big median ${med(big())}`);
  assert.ok(Math.abs(med(noop())) < 50_000, `noop median ${med(noop())}`);
  // A checkpoint may be running right now (it holds the gate for at most 400 ms): what must hold
  // is that the gate reopens, not that no checkpoint is under way (that raced on Node 24 in CI).
  for (const until = Date.now() + 2000; mw.monitor.gate.closed && Date.now() < until;) await new Promise((r) => setTimeout(r, 10));
  assert.equal(mw.monitor.gate.closed, false);
});
