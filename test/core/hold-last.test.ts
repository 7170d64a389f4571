import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import v8 from 'node:v8';
import { executionAsyncResource } from 'node:async_hooks';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import { createMonitor, type LeakMonitor } from '../../src/core/monitor';
import { forceFullGc } from '../../src/core/gc';
import { close, get, listen } from '../helpers';

// Dev mode keeps the last finished request's objects alive until the next one finishes, so that a
// checkpoint's forced GC does not drop the hidden classes of request objects and deoptimize the
// app's hot functions (src/core/monitor.ts, holdsLast). These tests pin down exactly what is held:
// one request, in dev mode only, and nothing after close().

/** Lets the 'close' event that ends the request reach leakwatch, then collects. */
async function settleAndCollect(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  forceFullGc();
}

async function expressApp(mode: 'dev' | 'production'): Promise<{ port: number; refs: Array<WeakRef<object>>; mw: ReturnType<typeof leakwatch>; server: http.Server }> {
  const refs: Array<WeakRef<object>> = [];
  const app = express();
  const mw = leakwatch({ notice: false, mode, enabled: true, autoProbe: false, samplingInterval: 0 });
  app.use(mw);
  app.get('/x/:n', (req, res) => { refs.push(new WeakRef(req)); res.json({ n: req.params.n }); });
  const server = http.createServer(app);
  return { port: await listen(server), refs, mw, server };
}

test('Express holds no request object, in dev mode either (its gain was small and it upset the probe)', async (t) => {
  const { port, refs, mw, server } = await expressApp('dev');
  t.after(async () => { mw.close(); await close(server); });
  await get(port, '/x/1');
  await settleAndCollect();
  assert.equal(refs[0].deref(), undefined);
});

test('production mode holds no request object', async (t) => {
  const { port, refs, mw, server } = await expressApp('production');
  t.after(async () => { mw.close(); await close(server); });
  assert.equal(mw.monitor.holdsLast, false);
  await get(port, '/x/1');
  await settleAndCollect();
  assert.equal(refs[0].deref(), undefined);
});

test('regression (dev-mode deoptimizations): Fastify dev mode holds the last request and reply only, and nothing after close()', async (t) => {
  const refs: Array<WeakRef<object>> = [];
  const app = Fastify();
  await app.register(fastifyLeakwatch, { notice: false, mode: 'dev', autoProbe: false, samplingInterval: 0 });
  app.get('/x/:n', async (request, reply) => { refs.push(new WeakRef(request), new WeakRef(reply)); return { ok: true }; });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => { await app.close(); });
  const port = (app.server.address() as AddressInfo).port;
  const monitor = (app as unknown as { leakwatch: LeakMonitor }).leakwatch;
  assert.equal(monitor.holdsLast, true);
  await get(port, '/x/1');
  await settleAndCollect();
  assert.ok(refs[0].deref() !== undefined && refs[1].deref() !== undefined, 'request and reply of the last request held');
  await get(port, '/x/2');
  await settleAndCollect();
  assert.ok(refs[0].deref() === undefined && refs[1].deref() === undefined, 'the previous request and reply released');
  assert.ok(refs[2].deref() !== undefined && refs[3].deref() !== undefined);
  // The route is still recorded as before: holding changes nothing the adapter reports.
  assert.equal(monitor.route('GET', '/x/:n')?.requests, 2);
  monitor.close();
  await settleAndCollect();
  assert.ok(refs[2].deref() === undefined && refs[3].deref() === undefined, 'close() releases the last one too');
});

/** The current queue entry, read inside a process.nextTick() callback. */
function tickEntry(): Promise<object> {
  return new Promise((resolve) => { process.nextTick(() => resolve(executionAsyncResource())); });
}

test('regression (process.nextTick on the runtime path): dev mode holds one nextTick entry, so a checkpoint\'s GCs keep its hidden class; production and close() hold none', async () => {
  // V8's own check, enabled at run time for functions compiled from here on.
  v8.setFlagsFromString('--allow-natives-syntax');
  const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: object, b: object) => boolean;
  const prod = createMonitor({ notice: false, mode: 'production', enabled: true });
  const dev = createMonitor({ notice: false, mode: 'dev', enabled: true, autoProbe: false, samplingInterval: 0, checkpointIntervalMs: 3_600_000 });
  try {
    await new Promise((r) => setImmediate(r));
    const held = (dev as unknown as { tickEntry: object | undefined }).tickEntry;
    assert.ok(held !== undefined, 'dev mode holds an entry');
    assert.equal(typeof (held as { callback?: unknown }).callback, 'function', 'the entry is a nextTick queue entry');
    assert.equal((prod as unknown as { tickEntry: unknown }).tickEntry, undefined, 'production mode holds none');
    // What a checkpoint does: full GCs with no other entry alive. The next entry still follows the
    // held one's hidden classes, which is what keeps the literal's feedback monomorphic.
    for (let i = 0; i < 3; i++) forceFullGc();
    assert.ok(sameMap(held!, await tickEntry()), 'a new entry has the held entry\'s hidden class after full GCs');
    dev.close();
    assert.equal((dev as unknown as { tickEntry: unknown }).tickEntry, undefined, 'close() lets go');
  } finally {
    dev.close();
    prod.close();
  }
});

test('regression (deoptimizations in the calm): with its recorder light, Fastify dev mode holds the last counted request beside the last timed one', async (t) => {
  const refs: Array<WeakRef<object>> = [];
  const app = Fastify();
  await app.register(fastifyLeakwatch, { notice: false, mode: 'dev', autoProbe: false, samplingInterval: 0, sampleEvery: 4, checkpointIntervalMs: 3_600_000 });
  app.get('/x/:n', async (request, reply) => { refs.push(new WeakRef(reply)); return { ok: true }; });
  await app.listen({ port: 0, host: '127.0.0.1' });
  t.after(async () => { await app.close(); });
  const port = (app.server.address() as AddressInfo).port;
  const monitor = (app as unknown as { leakwatch: LeakMonitor }).leakwatch;
  // What the calm and the load guard do: one request in sampleEvery per route is timed, the
  // others only counted (their raw responses carry none of our state: other hidden classes).
  monitor.recorder.light(true);
  const kinds: Array<'timed' | 'counted'> = [];
  for (let i = 0; i < 10; i++) {
    const timed0 = monitor.route('GET', '/x/:n')?.timed ?? 0;
    await get(port, `/x/${i}`);
    await settleAndCollect();
    kinds.push((monitor.route('GET', '/x/:n')?.timed ?? 0) > timed0 ? 'timed' : 'counted');
  }
  assert.equal(kinds[9], 'counted', `the last request is a counted one (${kinds.join(', ')})`);
  const lastTimed = kinds.lastIndexOf('timed');
  assert.ok(lastTimed >= 0, `some request was timed (${kinds.join(', ')})`);
  assert.equal(monitor.recorder.inFlight, 0);
  forceFullGc();
  const held = refs.flatMap((r, i) => (r.deref() !== undefined ? [i] : []));
  assert.deepEqual(held, [lastTimed, 9], `held: the last timed request (${lastTimed}) and the last counted one (9), no other (${kinds.join(', ')})`);
  monitor.holdLast(undefined);
  // A WeakRef read keeps its target until the current job ends: collect in a later one.
  await settleAndCollect();
  assert.deepEqual(refs.flatMap((r, i) => (r.deref() !== undefined ? [i] : [])), [], 'holdLast(undefined) lets go of both');
});
