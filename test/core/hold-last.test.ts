import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import type { AddressInfo } from 'node:net';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import type { LeakMonitor } from '../../src/core/monitor';
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
