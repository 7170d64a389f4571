import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import express from 'express';
import Fastify from 'fastify';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import { repoRoot, get, postJson, request, listen, close } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const zoo = require(path.join(repoRoot, 'examples', 'zoo', 'index.js')) as {
  scenarios: Array<{ name: string; path: string; truthBytesPerRequest: number; truthExternalBytesPerRequest: number }>;
  mountExpress(app: unknown): unknown;
  mountFastify(f: unknown): unknown;
  reset(): void;
};

const API = '/__leaks/api/probe';
process.on('warning', () => { /* the zoo's listener leak raises MaxListenersExceededWarning on purpose */ });

async function traffic(port: number, paths: string[], n: number): Promise<void> {
  for (let i = 0; i < n; i++) for (const p of paths) assert.equal((await get(port, p)).status, 200);
}

test('Express: probes replay the recorded request on loopback and tell leaks from clean routes', async (t) => {
  zoo.reset();
  const app = express();
  const mw = leakwatch({ notice: false, autoProbe: false });
  app.use(mw);
  zoo.mountExpress(app);
  app.post('/fixture/submit', (_req, res) => { res.json({ ok: true }); });
  app.get('/fixture/slow', (_req, res) => { setTimeout(() => res.json({ ok: true }), 150); });
  const server = app.listen(0, '127.0.0.1');
  const port = await listen(server);
  t.after(async () => { mw.close(); await close(server); zoo.reset(); });

  await t.test('HTTP errors: 404 unrecorded route, 400 bad bodies, 400 unsafe method, 405 wrong method', async () => {
    let r = await postJson(port, API, { method: 'GET', route: '/zoo/interval' });
    assert.equal(r.status, 404);
    assert.match(r.json().error, /no recorded request for GET \/zoo\/interval/);
    for (const body of [{ method: 'GET', route: '/zoo/hello/:name', iterations: 0 }, { method: 'GET', route: '/x', iterations: 5000 },
      { method: 'GET', route: '/x', iterations: 'many' }, { method: 'GET' }, { route: '/x' }, { method: 'GET', route: '/x', unsafe: 1 }, []]) {
      r = await postJson(port, API, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(typeof r.json().error, 'string');
    }
    r = await request(port, 'POST', API, { body: '{"method":', headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 400);
    assert.equal((await request(port, 'PUT', API)).status, 405);
    assert.equal((await request(port, 'POST', '/fixture/submit', { body: '{}', headers: { 'content-type': 'application/json' } })).status, 200);
    r = await postJson(port, API, { method: 'POST', route: '/fixture/submit' });
    assert.equal(r.status, 400);
    assert.match(r.json().error, /"unsafe": true/);
  });

  await traffic(port, ['/zoo/interval', '/zoo/transient', '/zoo/global-var', '/zoo/hello/ada'], 40);

  await t.test('a Timeout-per-request leak: leaking, ~1 Timeout per iteration, retainer path, scope diff; a held request gets through', async (t) => {
    const probing = postJson(port, API, { method: 'GET', route: '/zoo/interval', iterations: 30 });
    // While it runs: progress, 409 for a second probe, and an app request that waits at the gate.
    await new Promise((r) => setTimeout(r, 150));
    const progress = (await get(port, API)).json();
    assert.equal(progress.running, true);
    assert.equal(progress.route, '/zoo/interval');
    const busy = await postJson(port, API, { method: 'GET', route: '/zoo/hello/:name' });
    assert.equal(busy.status, 409);
    const held = get(port, '/zoo/hello/bob');
    const r = await probing;
    assert.equal(r.status, 200, r.body);
    assert.equal((await held).status, 200);
    const rep = r.json();
    assert.equal(rep.verdict, 'leaking');
    assert.equal(rep.iterations, 30);
    const truth = 1298;
    const read = `${rep.retainedBytesPerIteration} B/iteration; series ${rep.bytesPerIterationSeries.join(' ')}; excluded ${rep.excludedIterations.join(' ')}; warm-up ${rep.warmup}+${rep.extraWarmup}`;
    t.diagnostic(`interval probe: ${read}`);
    assert.ok(Math.abs(rep.retainedBytesPerIteration - truth) < truth * 0.15, `read ${read}`);
    const timeout = rep.newObjects.find((o: { constructor: string }) => o.constructor === 'Timeout');
    assert.ok(timeout && timeout.countPerIteration >= 0.9 && timeout.countPerIteration <= 1.25, JSON.stringify(timeout));
    assert.match(timeout.retainerPath, /state \(Object\) → intervals \(Array\)/);
    assert.match(rep.scopeDiff, /^-\s+\.intervals: Array\(\d+\)$/m);
    assert.ok(rep.heldRequests >= 1);
    assert.deepEqual(Object.keys(rep.statusCodes), ['200']);
    assert.ok(rep.statusCodes['200'] >= rep.iterations + rep.warmup + rep.extraWarmup);
    assert.match(rep.summary, /!!! \d+ objects leaked !!!/);
    assert.equal(mw.monitor.gate.closed, false);
    // The verdict is written where /api/routes reads it, and the report is kept per route.
    const routes = (await get(port, '/__leaks/api/routes')).json().routes as Array<{ route: string; verdict: string; verdictReason: string }>;
    const row = routes.find((x) => x.route === '/zoo/interval');
    assert.equal(row?.verdict, 'leaking');
    assert.match(row?.verdictReason ?? '', /^isolation probe: /);
    const kept = await get(port, API + '?method=GET&route=' + encodeURIComponent('/zoo/interval'));
    assert.equal(kept.status, 200);
    assert.equal(kept.json().retainedBytesPerIteration, rep.retainedBytesPerIteration);
    assert.equal((await get(port, API + '?method=GET&route=/zoo/never')).status, 404);
  });

  await t.test('clean routes are stable: heavy transient allocation and a no-op', async () => {
    for (const route of ['/zoo/transient', '/zoo/hello/:name']) {
      const r = await postJson(port, API, { method: 'GET', route, iterations: 30, objects: false });
      assert.equal(r.status, 200, r.body);
      const rep = r.json();
      assert.equal(rep.verdict, 'stable', `${route}: ${rep.summary}`);
      assert.equal(rep.newObjects, null);
    }
  });

  await t.test('the global-per-request leak names its globals', async () => {
    const r = await postJson(port, API, { method: 'GET', route: '/zoo/global-var', iterations: 12, objects: false });
    const rep = r.json();
    assert.equal(rep.verdict, 'leaking');
    // One per measured iteration: the probe extends its 12 to whole periods when the heap series
    // steps (a global object's dictionary growing does), and then measures more than 12.
    assert.ok(rep.measuredIterations >= 12, `${rep.measuredIterations} iterations measured`);
    assert.equal(rep.newGlobals.length, rep.measuredIterations);
    for (const g of rep.newGlobals) assert.match(g, /^Fo[a-z]*[A-Z]$/);
  });

  await t.test('a probe that times out answers 504 and reopens the gate', async () => {
    await traffic(port, ['/fixture/slow'], 1);
    const r = await postJson(port, API, { method: 'GET', route: '/fixture/slow', iterations: 30, objects: false, timeoutMs: 1000 });
    assert.equal(r.status, 504);
    assert.match(r.json().error, /timed out/);
    assert.equal(mw.monitor.gate.closed, false);
    assert.equal((await get(port, '/zoo/hello/cy')).status, 200);
    const progress = (await get(port, API)).json();
    assert.equal(progress.running, false);
    assert.match(progress.error, /timed out/);
  });
});

test('Fastify: the probe replays through the plugin and lists the handler closure', async (t) => {
  zoo.reset();
  const fastify = Fastify();
  await fastify.register(fastifyLeakwatch, { notice: false, autoProbe: false });
  zoo.mountFastify(fastify);
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  const port = (fastify.server.address() as { port: number }).port;
  t.after(async () => { await fastify.close(); zoo.reset(); });
  await traffic(port, ['/zoo/array-push', '/zoo/hello/ada'], 30);
  const r = await postJson(port, API, { method: 'GET', route: '/zoo/array-push', iterations: 30, objects: false });
  assert.equal(r.status, 200, r.body);
  const rep = r.json();
  assert.equal(rep.verdict, 'leaking');
  assert.ok(Math.abs(rep.retainedBytesPerIteration - 1040) < 1040 * 0.15, `read ${rep.retainedBytesPerIteration}`);
  assert.match(rep.scopeDiff, /^\+\s+\.array: Array\(\d+\)$/m);
  const clean = (await postJson(port, API, { method: 'GET', route: '/zoo/hello/:name', iterations: 30, objects: false })).json();
  assert.equal(clean.verdict, 'stable', clean.summary);
});
