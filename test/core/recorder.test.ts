import test from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Recorder, OVERFLOW } from '../../src/core/recorder';
import { summarize } from '../../src/core/summary';
import { listen, close, get } from '../helpers';

test('Recorder: dev mode reads a heap delta on every request, production mode on one in sampleEvery', () => {
  const dev = new Recorder(100, 16, 8, 1024);
  const prod = new Recorder(100, 16, 8, 1024, true);
  let keep: unknown[] = [];
  for (let i = 0; i < 80; i++) {
    for (const r of [dev, prod]) {
      const s = r.start();
      keep = new Array(1000).fill(i); // some garbage, so the deltas are not all zero
      r.finish(s, 'GET', '/a', 200, false);
    }
  }
  assert.equal(keep.length, 1000);
  const d = dev.routes.get('GET /a')!;
  const p = prod.routes.get('GET /a')!;
  assert.equal(d.requests, 80);
  assert.equal(d.heapSamples, 80);
  assert.equal(d.heapDelta.length, 16);
  assert.equal(d.heapDeltaHistogram.count, 80);
  assert.equal(p.requests, 80);
  assert.equal(p.heapSamples, 10);
  assert.equal(p.heapDelta.total, 10);
  assert.equal(p.heapDeltaHistogram.count, 10);
  // Durations are still recorded for every request.
  assert.equal(p.durationMs.total, 80);
  // The summary divides heap sums by the requests that were measured, not by all of them.
  const sp = summarize(p);
  assert.equal(sp.garbageBytesPerRequest, p.sumHeapDelta / 10);
  assert.ok(sp.gcShare >= 0 && sp.gcShare <= 1);
});

// Regression: getActiveResourcesInfo() builds a string per open handle, twice per reading; read on
// every sampled request it was the largest single cost of Fastify production mode (callgrind).
test('regression: production mode reads active resources on one sampled request in 8, dev mode on every sampled request', () => {
  const dev = new Recorder(100, 16, 8, 1024);
  const prod = new Recorder(100, 16, 8, 1024, true);
  // A timer that every reading sees appear: the route's resource delta counts the readings.
  const timers: NodeJS.Timeout[] = [];
  try {
    for (let i = 0; i < 640; i++) {
      for (const r of [dev, prod]) {
        const s = r.start();
        timers.push(setTimeout(() => {}, 60_000));
        r.finish(s, 'GET', '/a', 200, false);
      }
    }
  } finally {
    for (const t of timers) clearTimeout(t);
  }
  const d = dev.routes.get('GET /a')!;
  const p = prod.routes.get('GET /a')!;
  assert.equal(d.sampled, 80);
  assert.equal(p.sampled, 10);
  // Each reading saw the one timer its request made: the per-reading average is exact in both modes.
  assert.equal(d.resourceDelta.get('Timeout'), 80);
  assert.equal(p.resourceDelta.get('Timeout'), 10);
  assert.equal(summarize(p).resourceDeltaPerSampledRequest.Timeout, 1);
  // Heap deltas are still read on every sampled request.
  assert.equal(p.heapSamples, 80);
});

test('Recorder: the route index returns the table entries and never indexes overflowed names', () => {
  const r = new Recorder(3, 8, 1000, 1024);
  for (let i = 0; i < 50; i++) r.finish(r.start(), 'GET', `/r${i}`, 200, false);
  for (let i = 0; i < 3; i++) r.finish(r.start(), 'GET', `/r${i}`, 200, false);
  assert.equal(r.routes.size, 4); // three routes plus the overflow bucket
  assert.equal(r.routeFor('GET', '/r1'), r.routes.get('GET /r1'));
  assert.equal(r.routes.get('GET /r1')!.requests, 2);
  assert.equal(r.routes.get(`GET ${OVERFLOW}`)!.requests, 47);
  assert.equal(r.overflowed, 47);
  const index = (r as unknown as { index: Map<string, Map<string, unknown>> }).index;
  assert.equal(index.get('GET')!.size, 4);
});

test('Recorder: a global created while a sampled request runs is charged to its route', () => {
  const r = new Recorder(10, 8, 1, 1024);
  const name = `leakwatchRecorderTest${process.pid}`;
  const s = r.start();
  (globalThis as Record<string, unknown>)[name] = 1;
  try {
    r.finish(s, 'GET', '/global', 200, false);
    assert.deepEqual(r.routes.get('GET /global')!.globalsAdded, [name]);
    assert.ok(r.addedGlobals().includes(name));
  } finally {
    delete (globalThis as Record<string, unknown>)[name];
  }
});

test('Express adapter: keep-alive and pipelined responses are each recorded once', async () => {
  const express = require('express');
  const { leakwatch } = require('../../src/express/index');
  const app = express();
  const mw = leakwatch({ notice: false, autoProbe: false });
  app.use(mw);
  app.get('/hello/:name', (req: { params: { name: string } }, res: { json(v: unknown): void }) => res.json({ hello: req.params.name }));
  const server: http.Server = http.createServer(app);
  const port = await listen(server);
  try {
    const net = require('node:net');
    const sock = net.connect(port, '127.0.0.1');
    let data = '';
    await new Promise<void>((resolve, reject) => {
      sock.on('data', (c: Buffer) => { data += c.toString(); if ((data.match(/HTTP\/1\.1 200/g) ?? []).length === 3) resolve(); });
      sock.on('error', reject);
      sock.write('GET /hello/a HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/b HTTP/1.1\r\nHost: x\r\n\r\nGET /hello/c HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    sock.destroy();
    assert.equal((await get(port, '/hello/d')).status, 200);
    await new Promise((r) => setImmediate(r));
    const stats = mw.monitor.route('GET', '/hello/:name');
    assert.equal(stats.requests, 4);
    assert.equal(stats.aborted, 0);
    assert.equal(mw.monitor.recorder.inFlight, 0);
  } finally {
    mw.close();
    await close(server);
  }
});
