import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import inspector from 'node:inspector';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { get, postJson } from '../helpers';
import { startApp, captureLogger, FLAVOURS, type Flavour } from './apps';
import { gcWatch } from '../../src/core/gcwatch';

/**
 * Every async resource (timers, immediates, sockets, servers, workers, file requests) created
 * while `fn` runs, and which of them are still alive afterwards. Promises are left out: they
 * have no destroy of their own to wait for.
 */
async function resourcesLeftBy(fn: () => Promise<void>): Promise<{ created: number; alive: Map<number, string> }> {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 20;
  const alive = new Map<number, string>();
  let created = 0;
  let paused = false;
  const hook = createHook({
    init(id, type) {
      if (type === 'PROMISE' || paused) return;
      // Node's own once-a-second Date-header cache timer (started by any response) is not ours.
      if (type === 'Timeout' && /_storeHeader/.test(new Error().stack ?? '')) return;
      created++;
      alive.set(id, type === 'Timeout' && process.env.LW_DEBUG ? type + new Error().stack : type);
    },
    destroy(id) { alive.delete(id); },
  });
  hook.enable();
  try {
    await fn();
    // Destroy hooks of closed handles run on the next turns of the loop.
    // (the test's own waiting timers are not counted)
    for (let i = 0; i < 20 && alive.size > 0; i++) {
      paused = true;
      const wait = new Promise((r) => setTimeout(r, 10));
      paused = false;
      await wait;
    }
  } finally {
    hook.disable();
    Error.stackTraceLimit = limit;
  }
  return { created, alive };
}

/** Counts inspector sessions opened and closed, calling through to the real methods. */
function countSessions(): { opened: () => number; closed: () => number; restore: () => void } {
  const proto = inspector.Session.prototype as any;
  const { connect, disconnect } = proto;
  let opened = 0;
  let closed = 0;
  proto.connect = function (this: unknown, ...a: unknown[]) { const r = connect.apply(this, a); opened++; return r; };
  proto.disconnect = function (this: unknown, ...a: unknown[]) { closed++; return disconnect.apply(this, a); };
  return { opened: () => opened, closed: () => closed, restore: () => { proto.connect = connect; proto.disconnect = disconnect; } };
}

for (const flavour of ['Express 5', 'Fastify 5'] as Flavour[]) {
  test(`${flavour}: close releases every timer, socket, worker and inspector session leakwatch opened`, { timeout: 60_000 }, async () => {
    const sessions = countSessions();
    let closedFlag = false;
    let probeStatus = 0;
    const cap = captureLogger();
    try {
      const { created, alive } = await resourcesLeftBy(async () => {
        const app = await startApp(flavour, { logger: cap.logger, notice: false, checkpointIntervalMs: 50 });
        const m = app.monitor!;
        try {
          for (let i = 0; i < 200; i++) await get(app.port, `/hello/${i % 7}`);
          await new Promise((r) => setTimeout(r, 120)); // let a checkpoint or two run
          for (const p of ['', '/api/routes', '/api/process', '/api/status/modules', '/api/status/gc', '/metrics', '/status/heap']) {
            const r = await get(app.port, '/__leaks' + p);
            assert.ok(r.status < 400, `${p}: ${r.status}`);
          }
          assert.equal((await postJson(app.port, '/__leaks/api/gc', {})).status, 200);
          // A small probe: replay sockets, forced GCs, the scope reader's inspector session.
          const pr = await postJson(app.port, '/__leaks/api/probe', { method: 'GET', route: '/hello/:name', iterations: 3, warmup: 1, objects: false });
          probeStatus = pr.status;
        } finally {
          await app.close();
          closedFlag = m.closed;
        }
      });
      assert.equal(closedFlag, true);
      assert.equal(probeStatus, 200, 'the probe ran');
      assert.deepEqual([...alive.values()], [], `of ${created} async resources created, these are still alive after close`);
      assert.ok(sessions.opened() >= 1, 'the probe opened an inspector session');
      assert.equal(sessions.closed(), sessions.opened(), 'every inspector session was disconnected');
      assert.equal((gcWatch as any).observer, undefined, 'the shared GC observer is released');
      assert.deepEqual(cap.warnings, []);
    } finally {
      sessions.restore();
    }
  });
}

const CHILD = String.raw`
const http = require('node:http');
const dist = process.argv[2];
const variant = process.argv[3];
const { leakwatch } = require(dist + '/src/express/index.js');
const { fastifyLeakwatch } = require(dist + '/src/fastify/index.js');
const logger = { info() {}, warn(m) { console.error(m); } };
function hit(port, p, body) {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: p, method: body ? 'POST' : 'GET', agent: false,
      headers: body ? { 'content-type': 'application/json' } : {} }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode)); });
    req.on('error', reject);
    req.end(body);
  });
}
async function traffic(port) {
  for (let i = 0; i < 150; i++) await hit(port, '/hello/' + (i % 5));
  await new Promise((r) => setTimeout(r, 100));
  await hit(port, '/__leaks/api/status/modules');
  const s = await hit(port, '/__leaks/api/probe', JSON.stringify({ method: 'GET', route: '/hello/:name', iterations: 2, warmup: 1, objects: false }));
  if (s !== 200) throw new Error('probe answered ' + s);
}
(async () => {
  if (variant.startsWith('express')) {
    const app = require('express')();
    const mw = leakwatch({ logger, checkpointIntervalMs: 50 });
    app.use(mw);
    app.get('/hello/:name', (req, res) => res.json({ hi: req.params.name }));
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    await traffic(server.address().port);
    server.close();
    // "express-noclose" forgets mw.close(): leakwatch's timers are unref()ed, the process still exits.
    if (variant === 'express') mw.close();
  } else {
    const app = require('fastify')();
    await app.register(fastifyLeakwatch, { logger, checkpointIntervalMs: 50 });
    app.get('/hello/:name', async (req) => ({ hi: req.params.name }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    await traffic(app.server.address().port);
    await app.close();
  }
  console.log('closed');
})().catch((e) => { console.error(e); process.exit(2); });
`;

for (const variant of ['express', 'express-noclose', 'fastify']) {
  test(`a process that served traffic, checkpoints and a probe exits by itself after close (${variant})`, { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-exit-'));
    const file = path.join(dir, 'child.js');
    fs.writeFileSync(file, CHILD);
    const dist = path.resolve(__dirname, '..', '..');
    const t0 = Date.now();
    let closedAt = 0;
    const result = await new Promise<{ code: number | null; out: string; err: string; killed: boolean }>((resolve) => {
      // Resolve express/fastify from the repository, where the child's file is not.
      const child = spawn(process.execPath, [file, dist, variant], { env: { ...process.env, NODE_PATH: path.resolve(dist, '..', 'node_modules') }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      let killed = false;
      child.stdout.on('data', (d) => { out += d; if (out.includes('closed') && closedAt === 0) closedAt = Date.now(); });
      child.stderr.on('data', (d) => { err += d; });
      const timer = setTimeout(() => { killed = true; child.kill('SIGKILL'); }, 30_000);
      child.on('exit', (code) => { clearTimeout(timer); resolve({ code, out, err, killed }); });
    });
    fs.rmSync(dir, { recursive: true, force: true });
    assert.equal(result.killed, false, `the child did not exit by itself; stderr: ${result.err}`);
    assert.equal(result.code, 0, result.err);
    assert.match(result.out, /closed/);
    const lingerMs = Date.now() - closedAt;
    assert.ok(lingerMs < 3000, `exited ${lingerMs} ms after closing (limit 3000)`);
    console.log(`# ${variant}: ran ${Date.now() - t0} ms, exited ${lingerMs} ms after close`);
  });
}

// Regression: a monitor closed while its app goes on serving (the Fastify decorator's close(), or
// the Express middleware's) started every later request and never finished it, so the in-flight
// count only grew. The app must keep answering, and nothing is counted in.
for (const flavour of FLAVOURS) {
  test(`${flavour}: after the monitor is closed the app keeps serving and no request is left in flight`, async () => {
    const app = await startApp(flavour, { notice: false, mode: 'production', enabled: true });
    const m = app.monitor!;
    try {
      for (let i = 0; i < 3; i++) assert.equal((await get(app.port, `/hello/${i}`)).status, 200);
      const before = m.recorder.totalRequests;
      m.close();
      for (let i = 0; i < 5; i++) {
        const r = await get(app.port, `/hello/c${i}`);
        assert.equal(r.status, 200);
        assert.deepEqual(JSON.parse(r.body), { hi: `c${i}` });
      }
      assert.equal(m.recorder.inFlight, 0);
      assert.equal(m.recorder.totalRequests, before);
    } finally {
      await app.close();
    }
  });
}
