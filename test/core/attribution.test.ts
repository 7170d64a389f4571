import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { randomBytes } from 'node:crypto';
import express from 'express';
import { heapSampler, TRAMPOLINE_PREFIX } from '../../src/core/heapsampler';
import { Attribution, unwrapHandler, NOT_ATTRIBUTED } from '../../src/core/attribution';
import { RouteStats } from '../../src/core/recorder';
import { forceFullGc } from '../../src/core/gc';
import { leakwatch } from '../../src/express/index';
import { listen, close, get, postJson } from '../helpers';

const stats = (route: string): RouteStats => new RouteStats('GET ' + route, 'GET', route, 8, Date.now());

test('a route trampoline keeps its frame when its caller is optimised: a 1 KB/call leak is charged to it (regression: inlining)', () => {
  assert.ok(heapSampler.acquire(8192), 'the sampling heap profiler starts');
  try {
    const att = new Attribution(10);
    const route = stats('/leak');
    const kept: string[] = [];
    let handler: Function = () => { kept.push(randomBytes(512).toString('hex')); };
    assert.equal(att.wrap(route, handler, (f) => { handler = f; }), true);
    assert.ok(handler.name.startsWith(TRAMPOLINE_PREFIX));
    assert.equal(handler.length, 3, 'routers read length 4 as an error handler');
    // One call site, one target: the shape under which TurboFan inlines small functions.
    const call = (f: Function): unknown => f(1, 2, 3);
    const before = heapSampler.read().get(route.attributionId)?.bytes ?? 0;
    for (let i = 0; i < 20_000; i++) call(handler);
    forceFullGc();
    const after = heapSampler.read().get(route.attributionId)?.bytes ?? 0;
    const perCall = (after - before) / 20_000;
    // Truth 1,040 B (1,024 characters + header); 20,000 calls put sampling noise near 2%.
    assert.ok(perCall > 800 && perCall < 1300, `charged ${perCall.toFixed(0)} B/call`);
    kept.length = 0;
    att.close();
  } finally {
    heapSampler.release();
  }
});

test('attribution: error handlers are left alone, a handler shared by two routes charges neither, close() puts originals back', () => {
  const att = new Attribution(10);
  const a = stats('/a');
  const b = stats('/b');
  const errorHandler = (_e: unknown, _q: unknown, _s: unknown, _n: unknown): void => {};
  assert.equal(att.wrap(a, errorHandler, () => assert.fail('must not replace a 4-argument handler')), false);
  const original = (x: number): number => x + 1;
  let slot: Function = original;
  assert.equal(att.wrap(a, slot, (f) => { slot = f; }), true);
  assert.notEqual(slot, original);
  assert.equal(unwrapHandler(slot), original, 'the probe lists the original closure');
  assert.equal(slot(41), 42, 'arguments and result pass through');
  assert.equal(att.routeOf(a.attributionId), a);
  // The same trampoline reached from another route: their bytes would mix.
  assert.equal(att.wrap(b, slot, () => assert.fail('no second wrapper')), false);
  assert.equal(a.attributionId, NOT_ATTRIBUTED);
  assert.equal(b.attributionId, NOT_ATTRIBUTED);
  att.close();
  assert.equal(slot, original, 'close() restored the handler');
});

test('Express: handlers are wrapped after a route first finishes, responses are unchanged, and close() restores them', async () => {
  const app = express();
  const mw = leakwatch({ notice: false, mode: 'dev', autoProbe: false });
  app.use(mw);
  function showUser(req: express.Request, res: express.Response): void { res.json({ id: req.params.id }); }
  app.get('/users/:id', showUser);
  const server = http.createServer(app);
  const port = await listen(server);
  try {
    const r1 = await get(port, '/users/7');
    const r2 = await get(port, '/users/8');
    assert.equal(r1.status, 200);
    assert.deepEqual(r2.json(), { id: '8' });
    const router = (app as unknown as { router: { stack: Array<{ route?: { stack: Array<{ handle: Function }> } }> } }).router;
    const layer = router.stack.find((l) => l.route !== undefined)!.route!.stack[0];
    assert.ok(layer.handle.name.startsWith(TRAMPOLINE_PREFIX), `wrapped: ${layer.handle.name}`);
    assert.equal(unwrapHandler(layer.handle), showUser);
    assert.ok(mw.monitor.route('GET', '/users/:id')!.attributionId >= 0);
    mw.close();
    assert.equal(layer.handle, showUser, 'restored on close');
  } finally {
    mw.close();
    await close(server);
  }
});

/**
 * An Express app whose GET /leak keeps a 2 KB string per request, with leakwatch in dev mode and
 * no time-based checkpoints: the test takes them.
 */
async function leakApp(): Promise<{ mw: ReturnType<typeof leakwatch>; kept: string[]; server: http.Server; port: number; detector: { checkpoint(): Promise<boolean>; window(): { routes: string[]; sampled: number[][] } } }> {
  const app = express();
  const mw = leakwatch({ notice: false, mode: 'dev', autoProbe: false, checkpointIntervalMs: 3_600_000 });
  app.use(mw);
  const kept: string[] = [];
  app.get('/leak', (_req, res) => { kept.push(randomBytes(1024).toString('hex')); res.json({ n: kept.length }); });
  const server = http.createServer(app);
  const port = await listen(server);
  const detector = mw.monitor.features.detector as unknown as { checkpoint(): Promise<boolean>; window(): { routes: string[]; sampled: number[][] } };
  return { mw, kept, server, port, detector };
}

test('probe replays are not charged to the route: the sampled level does not jump by what 103 replays kept (regression)', async () => {
  const { mw, kept, server, port, detector } = await leakApp();
  const level = (): number => {
    const w = detector.window();
    const s = w.sampled[w.routes.indexOf('GET /leak')];
    for (let i = s.length - 1; i >= 0; i--) if (Number.isFinite(s[i])) return s[i];
    return NaN;
  };
  try {
    for (let i = 0; i < 5; i++) assert.equal((await get(port, '/leak')).status, 200);
    // Readings come at every other checkpoint: two in a row make sure one is taken.
    await detector.checkpoint(); await detector.checkpoint();
    const before = level();
    assert.ok(Number.isFinite(before), 'the route has a sampled level');
    const r = await postJson(port, '/__leaks/api/probe', { method: 'GET', route: '/leak', iterations: 100, objects: false });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json().verdict, 'leaking');
    await detector.checkpoint(); await detector.checkpoint();
    // Charged to the route: ~103 × 2 KB = 214 KB more (±40 KB of sampling noise). Under the
    // replay frame: no request of the route ran, so only the last responses' leftovers move it
    // (±17 KB seen on Node 24).
    const jump = level() - before;
    assert.ok(Math.abs(jump) < 64 * 1024, `sampled level moved by ${jump} B`);
  } finally {
    mw.close();
    await close(server);
    kept.length = 0;
  }
});

test('across window wraps a leak\'s sampled readings only grow: no stale reading is interleaved', async () => {
  const { mw, kept, server, port, detector } = await leakApp();
  try {
    // 150 checkpoints: more than twice the 64-checkpoint window; 4 requests (~8 KB kept) between.
    for (let k = 0; k < 150; k++) {
      for (let i = 0; i < 4; i++) assert.equal((await get(port, '/leak')).status, 200);
      await detector.checkpoint();
    }
    const w = detector.window();
    const series = w.sampled[w.routes.indexOf('GET /leak')].filter((v) => Number.isFinite(v));
    assert.ok(series.length >= 28 && series.length <= 33, `readings in the window: ${series.length}`);
    // The leak only grows; a stale reading from 64 checkpoints back would sit ~500 KB lower.
    for (let i = 1; i < series.length; i++) assert.ok(series[i] - series[i - 1] > -131_072, `step ${i}: ${series[i - 1]} → ${series[i]}`);
  } finally {
    mw.close();
    await close(server);
    kept.length = 0;
  }
});
