import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { get, request, sleep, until } from '../helpers';
import { FLAVOURS, startApp, captureLogger, rawExchange, splitResponses, hasResponses, type AppHandle, type Flavour } from './apps';
import type { LeakMonitor } from '../../src/core/monitor';

function stats(m: LeakMonitor, route: string) {
  return m.route('GET', route);
}

/** Opens a request and drops the connection after `afterMs` (or after the first body bytes). */
function abandon(port: number, path: string, opts: { afterMs?: number; afterFirstChunk?: boolean }): Promise<'dropped'> {
  return new Promise((resolve) => {
    const req = http.request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      if (opts.afterFirstChunk) res.once('data', () => { req.destroy(); resolve('dropped'); });
    });
    req.on('error', () => { /* we hung up on purpose */ });
    if (opts.afterMs !== undefined) setTimeout(() => { req.destroy(); resolve('dropped'); }, opts.afterMs);
    req.end();
  });
}

for (const flavour of FLAVOURS) {
  test(`${flavour}: aborted, throwing, streaming, keep-alive and pipelined requests are all recorded without error`, async () => {
    const cap = captureLogger();
    const app = await startApp(flavour, { logger: cap.logger, notice: false });
    const m = app.monitor!;
    try {
      // A handler that throws: the framework's own 500, recorded as a server error.
      const t = await get(app.port, '/throw');
      assert.equal(t.status, 500);
      // A streamed (chunked) response, complete.
      const s = await get(app.port, '/stream');
      assert.equal(s.status, 200);
      assert.equal(s.body.split('\n').filter(Boolean).length, 5);
      // The client goes away before any response, and in the middle of a streamed one.
      await abandon(app.port, '/slow', { afterMs: 60 });
      await abandon(app.port, '/drip', { afterFirstChunk: true });
      await until('both abandoned requests to be recorded', () => (stats(m, '/slow')?.requests ?? 0) === 1 && (stats(m, '/drip')?.requests ?? 0) === 1);
      assert.equal(stats(m, '/slow')!.aborted, 1, 'client gone before the response');
      assert.equal(stats(m, '/drip')!.aborted, 1, 'client gone mid-response');

      // Keep-alive: 20 requests over one socket.
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const sockets = new Set<unknown>();
      for (let i = 0; i < 20; i++) {
        await new Promise<void>((resolve, reject) => {
          http.get({ host: '127.0.0.1', port: app.port, path: `/hello/k${i}`, agent }, (res) => {
            sockets.add(res.socket);
            res.resume();
            res.on('end', () => resolve());
          }).on('error', reject);
        });
      }
      agent.destroy();
      assert.equal(sockets.size, 1, 'one kept-alive socket');

      // Pipelining: three requests written at once on one socket, one of them to leakwatch itself.
      const raw = await rawExchange(app.port,
        'GET /hello/p1 HTTP/1.1\r\nHost: localhost\r\n\r\nGET /__leaks/api/routes HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello/p2 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', hasResponses(3));
      const parts = splitResponses(raw);
      assert.deepEqual(parts.map((p) => p.status), [200, 200, 200]);
      assert.equal(parts[0].body, '{"hi":"p1"}');
      assert.ok(Array.isArray(JSON.parse(parts[1].body).routes));
      assert.equal(parts[2].body, '{"hi":"p2"}');

      await until('every request to finish recording', () => m.recorder.inFlight === 0);
      assert.equal(stats(m, '/hello/:name')?.requests, 22);
      assert.equal(stats(m, '/throw')?.requests, 1);
      assert.equal(stats(m, '/throw')?.serverErrors, 1);
      assert.equal(stats(m, '/stream')?.requests, 1);
      assert.equal(stats(m, '/stream')?.aborted, 0);
      assert.equal(m.recorder.totalRequests, 26, 'own endpoints are not recorded; nothing twice, nothing lost');
      assert.equal(m.faults, 0);
      assert.deepEqual(cap.warnings, []);
    } finally { await app.close(); }
  });
}

for (const flavour of FLAVOURS) {
  // Guards the per-socket state slot (Fastify) and the per-response one: a second request that
  // arrives on a socket while the first is still in flight must be recorded under its own route,
  // whether the first finishes or the connection drops under both.
  test(`${flavour}: overlapping pipelined requests on one socket are each recorded under their own route, dropped or not`, async () => {
    const app = await startApp(flavour, { notice: false });
    const m = app.monitor!;
    try {
      const raw = await rawExchange(app.port,
        'GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello/q1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', hasResponses(2));
      assert.deepEqual(splitResponses(raw).map((p) => p.status), [200, 200]);
      await until('both requests to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 2);
      assert.equal(stats(m, '/slow')?.requests, 1);
      assert.equal(stats(m, '/slow')?.aborted, 0);
      assert.equal(stats(m, '/hello/:name')?.requests, 1);
      assert.equal(stats(m, '/hello/:name')?.aborted, 0);

      // The same two, and the connection dropped while /slow (300 ms) is still being served.
      await new Promise<void>((resolve, reject) => {
        const sock = net.connect(app.port, '127.0.0.1', () => {
          sock.write('GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello/q2 HTTP/1.1\r\nHost: localhost\r\n\r\n');
          setTimeout(() => { sock.destroy(); resolve(); }, 100);
        });
        sock.on('error', reject);
      });
      await until('the dropped requests to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 4);
      assert.equal(stats(m, '/slow')?.requests, 2);
      assert.equal(stats(m, '/slow')?.aborted, 1, 'the slow request never got its response');
      assert.equal(stats(m, '/hello/:name')?.requests, 2);
      assert.equal(m.faults, 0);
    } finally { await app.close(); }
  });
}

for (const flavour of FLAVOURS) {
  // Guards the end of requests whose response closed before leakwatch could listen to it.
  test(`${flavour}: a request whose client hangs up while it waits at the isolation gate is not left in flight`, async () => {
    const app = await startApp(flavour, { notice: false });
    const m = app.monitor!;
    try {
      const token = m.gate.close(5000)!;
      assert.ok(token, 'the gate closes');
      const req = http.request({ host: '127.0.0.1', port: app.port, path: '/hello/held', agent: false });
      req.on('error', () => { /* we hang up on purpose */ });
      req.end();
      await until('the request to wait at the gate', () => m.gate.queued === 1);
      req.destroy();
      await sleep(100);
      m.gate.open(token);
      await until('the request to be recorded', () => m.recorder.totalRequests === 1);
      assert.equal(m.recorder.inFlight, 0, 'nothing left in flight');
      // Express has not routed it yet when it ends (its label is then '(unmatched)'); Fastify has.
      assert.equal([...m.recorder.routes.values()].reduce((n, r) => n + r.aborted, 0), 1, 'recorded as aborted');
      // The app still serves.
      assert.equal((await get(app.port, '/hello/after')).status, 200);
      await until('every request to finish recording', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 2);
      assert.equal(m.faults, 0);
    } finally { await app.close(); }
  });
}

/** The exact bytes an app answers to a fixed request list (Date headers removed). */
async function transcript(app: AppHandle): Promise<string[]> {
  const reqs = [
    'GET /hello/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'GET /text HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'GET /throw HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'POST /echo HTTP/1.1\r\nHost: h\r\nContent-Type: application/json\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{"a":[1,"b"]}',
    'GET /nope?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'HEAD /hello/y HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'GET /hello/p1 HTTP/1.1\r\nHost: h\r\n\r\nGET /text HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
  ];
  const out: string[] = [];
  for (const r of reqs) out.push((await rawExchange(app.port, r, () => false)).replace(/\r\ndate: [^\r]*/gi, ''));
  return out;
}

interface Fault { name: string; inject(m: LeakMonitor): () => void }

const boom = (where: string) => () => { throw new Error(`injected fault in ${where}`); };

/** Each fault replaces one piece of leakwatch with a throwing one; `inject` returns the undo. */
const FAULTS: Fault[] = [
  { name: 'recorder.start', inject: (m) => { const r = m.recorder as any; r.start = boom('recorder.start'); return () => { delete r.start; }; } },
  { name: 'recorder.finish', inject: (m) => { const r = m.recorder as any; r.finish = boom('recorder.finish'); return () => { delete r.finish; }; } },
  { name: 'recorder.onFinish hook', inject: (m) => { const r = m.recorder as any; const prev = r.onFinish; r.onFinish = boom('onFinish'); return () => { r.onFinish = prev; }; } },
  {
    name: 'detector analysis (checkpoint record + analyze)',
    inject: (m) => {
      const d = m.features.detector as any;
      if (!d) return () => {};
      d.analyze = boom('detector.analyze');
      d.record = boom('detector.record');
      return () => { delete d.analyze; delete d.record; };
    },
  },
];

for (const flavour of ['Express 4', 'Express 5', 'Fastify 5'] as Flavour[]) {
  test(`${flavour}: faults injected into the recorder and the analysis leave the app's responses byte-identical, logged once`, async () => {
    const bare = await startApp(flavour, {}, { leakwatch: false });
    let expected: string[];
    try { expected = await transcript(bare); } finally { await bare.close(); }
    assert.equal(expected.length, 8);
    assert.match(expected[0], /^HTTP\/1\.1 200/);

    const cap = captureLogger();
    // Checkpoints as often as allowed, so the analysis runs (and fails) during the test.
    const app = await startApp(flavour, { logger: cap.logger, notice: false, checkpointIntervalMs: 50 });
    const m = app.monitor!;
    try {
      // Healthy leakwatch first: already byte-identical.
      assert.deepEqual(await transcript(app), expected, 'healthy');
      for (const f of FAULTS) {
        const faults0 = m.faults;
        const undo = f.inject(m);
        try {
          assert.deepEqual(await transcript(app), expected, `with a fault in ${f.name}`);
          // A request whose recording failed is not left "in flight": checkpoints and probes drain on that count.
          await until(`inFlight back to 0 after a fault in ${f.name}`, () => m.recorder.inFlight === 0, 2000);
          if (f.name.startsWith('detector')) {
            if (m.features.detector) {
              // A checkpoint is due after 50 ms with new requests: wait for it to fail.
              await until('a failing checkpoint', () => m.faults > faults0, 5000);
              assert.equal(m.gate.closed, false, 'a failing checkpoint reopened the gate');
              assert.deepEqual(await transcript(app), expected, 'after a failed checkpoint');
            }
          } else {
            assert.ok(m.faults > faults0, `${f.name}: the fault was counted`);
          }
        } finally { undo(); }
      }
      // All faults at once.
      const undos = FAULTS.map((f) => f.inject(m));
      try { assert.deepEqual(await transcript(app), expected, 'with every fault at once'); } finally { undos.forEach((u) => u()); }
      assert.equal(cap.warnings.length, 1, `logged exactly once, though ${m.faults} faults happened`);
      assert.match(cap.warnings[0], /leakwatch: internal fault, the app is unaffected \(logged once\): Error: injected fault in recorder\.start/);
      // And leakwatch itself still serves after its faults.
      assert.equal((await get(app.port, '/__leaks/api/routes')).status, 200);
      console.log(`# ${flavour}: ${FAULTS.length} fault sites, ${m.faults} faults raised, ${cap.warnings.length} log line`);
    } finally { await app.close(); }
  });
}

test('a logger that throws while reporting a fault does not reach the app', async () => {
  const broken = { info: () => {}, warn: () => { throw new Error('logger down'); } };
  const app = await startApp('Express 5', { logger: broken, notice: false });
  try {
    (app.monitor!.recorder as any).finish = boom('finish');
    const r = await request(app.port, 'GET', '/hello/z');
    assert.equal(r.body, '{"hi":"z"}');
    assert.equal(app.monitor!.faults, 1);
  } finally { await app.close(); }
});
