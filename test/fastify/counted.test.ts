import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import http2 from 'node:http2';
import Fastify from 'fastify';
import { fastifyLeakwatch } from '../../src/fastify';
import { flood, get, sleep, until } from '../helpers';
import { startApp, rawExchange, splitResponses, hasResponses } from '../safety/apps';
import { summarize } from '../../src/core/summary';
import type { LeakMonitor } from '../../src/core/monitor';
import type { Detector } from '../../src/core/detector';

function route(m: LeakMonitor, path: string) {
  return m.route('GET', path)!;
}

/** A GET through `agent` (keep-alive, one socket: the same connection each time); its status. */
function keptAlive(agent: http.Agent, port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode ?? 0)); }).on('error', reject);
  });
}

// Production mode on Fastify times one request in sampleEvery per route and only counts the
// others, parked on their connection until Node publishes the response's finish (core/counted.ts). What stays exact must stay
// exact on the counted path too: requests, 5xx, aborted, and the in-flight count probes drain on.
test('Fastify production: counted requests keep exact request, 5xx, aborted and in-flight counts; durations come from the timed ones', async () => {
  // sampleEvery 1000: after each route's first request, every request here is a counted one.
  const app = await startApp('Fastify 5', { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 1000 });
  const m = app.monitor!;
  try {
    // Each route's first request is timed.
    for (const p of ['/hello/first', '/throw', '/slow', '/drip']) await get(app.port, p);
    await until('the first requests to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 4);
    for (const p of ['/hello/:name', '/throw', '/slow', '/drip']) assert.equal(route(m, p).timed, 1, p);

    // Counted from here on.
    for (let i = 0; i < 30; i++) assert.equal((await get(app.port, `/hello/n${i}`)).status, 200);
    for (let i = 0; i < 3; i++) assert.equal((await get(app.port, '/throw')).status, 500);
    // The client goes away before any response, and in the middle of a streamed one.
    for (const [path, afterFirstChunk] of [['/slow', false], ['/drip', true]] as const) {
      await new Promise<void>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port: app.port, path, agent: false }, (res) => {
          if (afterFirstChunk) res.once('data', () => { req.destroy(); resolve(); });
        });
        req.on('error', () => { /* we hung up on purpose */ });
        if (!afterFirstChunk) setTimeout(() => { req.destroy(); resolve(); }, 60);
        req.end();
      });
    }
    // Keep-alive: 10 requests over one socket.
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 10; i++) assert.equal(await keptAlive(agent, app.port, `/hello/k${i}`), 200);
    agent.destroy();
    // Pipelined: the second response waits behind the first on its connection.
    const raw = await rawExchange(app.port,
      'GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello/p1 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n', hasResponses(2));
    assert.deepEqual(splitResponses(raw).map((p) => p.status), [200, 200]);
    // And dropped while the first is still being served: the queued one never gets a response.
    await new Promise<void>((resolve, reject) => {
      const sock = net.connect(app.port, '127.0.0.1', () => {
        sock.write('GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\nGET /hello/p2 HTTP/1.1\r\nHost: localhost\r\n\r\n');
        setTimeout(() => { sock.destroy(); resolve(); }, 100);
      });
      sock.on('error', reject);
    });

    const total = 4 + 30 + 3 + 2 + 10 + 2 + 2;
    await until('every request to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === total);
    const hello = route(m, '/hello/:name');
    assert.equal(hello.requests, 1 + 30 + 10 + 2);
    assert.equal(hello.serverErrors, 0);
    assert.equal(hello.aborted, 0);
    const thrown = route(m, '/throw');
    assert.equal(thrown.requests, 4);
    assert.equal(thrown.serverErrors, 4, 'every 500 counted, the timed first and the counted three');
    const slow = route(m, '/slow');
    assert.equal(slow.requests, 1 + 1 + 2);
    assert.equal(slow.aborted, 2, 'gone before the response, alone and pipelined');
    assert.equal(route(m, '/drip').aborted, 1, 'gone mid-stream');
    // Only the timed requests feed durations: hello's first, and the ones leakwatch could not count
    // (a response queued behind another is timed, see fastify/index.ts).
    assert.ok(hello.timed >= 1 && hello.timed <= 3, `hello timed ${hello.timed}`);
    assert.equal(hello.durationMs.total, hello.timed);
    const s = summarize(hello);
    assert.equal(s.requests, 43);
    assert.equal(s.timedRequests, hello.timed);
    assert.ok(s.meanDurationMs > 0 && s.meanDurationMs < 1000, `mean duration ${s.meanDurationMs}`);
    assert.ok(s.meanConcurrency >= 1 && s.meanConcurrency < 3, `mean concurrency ${s.meanConcurrency}`);
    assert.ok(s.lastSeenMs >= s.firstSeenMs);
    // The route page says what its mean duration is over.
    const page = await get(app.port, `/__leaks/routes/${encodeURIComponent('GET /hello/:name')}`);
    assert.equal(page.status, 200);
    assert.match(page.body, new RegExp(`over ${hello.timed} timed requests`));
    assert.equal(m.faults, 0);
  } finally {
    await app.close();
  }
});

test('Fastify production: one request in sampleEvery per route is timed, even when routes alternate', async () => {
  const app = await startApp('Fastify 5', { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 4 });
  const m = app.monitor!;
  try {
    // Alternating routes: one counter for the whole process would time only one of them.
    for (let i = 0; i < 40; i++) assert.equal((await get(app.port, i % 2 === 0 ? `/hello/a${i}` : '/stream')).status, 200);
    await until('every request to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 40);
    for (const p of ['/hello/:name', '/stream']) {
      const st = route(m, p);
      assert.equal(st.requests, 20, p);
      // The first, then one in 4 of the 19 after it.
      assert.equal(st.timed, 1 + Math.floor(19 / 4), p);
      assert.equal(st.heapSamples, st.timed, `${p}: every timed request is a heap sample`);
      assert.ok(st.lastRequest !== undefined, `${p}: a replay sample was kept`);
    }
  } finally {
    await app.close();
  }
});

test('Fastify production: a request past maxRoutes counts once in the overflow bucket, counted or timed', async () => {
  const app = await startApp('Fastify 5', { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 4, maxRoutes: 2 });
  const m = app.monitor!;
  try {
    // The first two routes fill the table; the others fall into GET (other).
    assert.equal((await get(app.port, '/hello/a')).status, 200);
    assert.equal((await get(app.port, '/text')).status, 200);
    for (let i = 0; i < 10; i++) assert.equal((await get(app.port, '/stream')).status, 200);
    for (let i = 0; i < 6; i++) assert.equal((await get(app.port, '/throw')).status, 500);
    await until('every request to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 18);
    const other = route(m, '(other)');
    assert.equal(other.requests, 16);
    assert.equal(other.serverErrors, 6);
    assert.equal(m.recorder.overflowed, 16, 'one per request, whether it was timed or counted');
    // Both routes share the bucket's one-in-4: its first request, then one in 4 of the 15 after it.
    assert.equal(other.timed, 1 + Math.floor(15 / 4));
    assert.equal(m.recorder.routes.size, 3);
  } finally {
    await app.close();
  }
});

// Counted requests are settled when the next request arrives on their connection, when it
// closes, or by a sweep (core/counted.ts). A connection left open and idle must not hide them
// from anything that reads the counts.
test('Fastify production: requests counted on an idle keep-alive connection show in the API, the metrics and the in-flight count at once', async () => {
  const app = await startApp('Fastify 5', { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 1000 });
  const m = app.monitor!;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const once = (path: string): Promise<number> => keptAlive(agent, app.port, path);
  try {
    // The first of each route is timed: on fresh connections, closed.
    for (const p of ['/hello/first', '/throw']) await get(app.port, p);
    await until('the first requests to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 2);
    // Then 12 hellos and 5 errors over one kept-open connection, the last one an error.
    for (let i = 0; i < 12; i++) assert.equal(await once(`/hello/k${i}`), 200);
    for (let i = 0; i < 5; i++) assert.equal(await once('/throw'), 500);
    // Read over other connections, with the kept one still open and idle.
    const routes = (await get(app.port, '/__leaks/api/routes')).json();
    assert.equal(routes.inFlight, 0);
    assert.equal(routes.totalRequests, 2 + 12 + 5);
    const byKey = new Map(routes.routes.map((r: { key: string }) => [r.key, r]));
    assert.equal((byKey.get('GET /hello/:name') as any).requests, 13);
    assert.equal((byKey.get('GET /throw') as any).requests, 6);
    assert.equal((byKey.get('GET /throw') as any).serverErrors, 6);
    const metrics = (await get(app.port, '/__leaks/metrics')).body;
    assert.match(metrics, /^leakwatch_route_requests_total\{method="GET",route="\/throw"\} 6$/m);
    assert.match(metrics, /^leakwatch_route_requests_total\{method="GET",route="\/hello\/:name"\} 13$/m);

    // What the readers call: recorder.settle() takes the idle connection's last request off it.
    assert.equal(await once('/throw'), 500);
    const raw = m.recorder.routes.get('GET /throw')!;
    m.recorder.settle();
    assert.equal(raw.requests, 7);
    assert.equal(raw.serverErrors, 7);
    assert.equal(m.recorder.active, 0);
  } finally {
    agent.destroy();
    await app.close();
  }
});

test('Fastify production: connections are forgotten when they close', async () => {
  const app = await startApp('Fastify 5', { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 1000 });
  const m = app.monitor!;
  const counted = m.features.counted as unknown as { sockets: Set<unknown> };
  try {
    await get(app.port, '/hello/first');
    // 40 connections, each with a counted request, closed after it.
    await Promise.all(Array.from({ length: 40 }, (_, i) => get(app.port, `/hello/c${i}`)));
    await until('every request to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 41);
    await until('every closed connection to be forgotten', () => counted.sockets.size === 0);
    assert.equal(route(m, '/hello/:name').requests, 41);
  } finally {
    await app.close();
  }
  // Fastify's onClose closed the monitor, and with it the counting.
  assert.equal(m.recorder.settler, undefined);
});

// HTTP/2 streams share one connection and answer out of order: nothing can be parked on it, so
// production mode times them, sampled process-wide, and every one is still counted.
test('Fastify production over HTTP/2: every request is counted, none is parked on the shared connection', async () => {
  const app = Fastify({ http2: true });
  await app.register(fastifyLeakwatch, { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 4 });
  app.get('/hello/:name', async (req: any) => ({ hi: req.params.name }));
  app.get('/throw', async () => { throw new Error('handler failed'); });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const m = app.leakwatch;
  const port = (app.server.address() as net.AddressInfo).port;
  const session = http2.connect(`http://127.0.0.1:${port}`);
  const once = (path: string): Promise<number> => new Promise((resolve, reject) => {
    const req = session.request({ ':path': path });
    let status = 0;
    req.on('response', (h) => { status = Number(h[':status']); });
    req.on('data', () => {});
    req.on('end', () => resolve(status));
    req.on('error', reject);
    req.end();
  });
  try {
    const statuses = await Promise.all([
      ...Array.from({ length: 20 }, (_, i) => once(`/hello/h${i}`)),
      ...Array.from({ length: 5 }, () => once('/throw')),
    ]);
    assert.deepEqual(statuses.filter((x) => x === 200).length, 20);
    assert.deepEqual(statuses.filter((x) => x === 500).length, 5);
    await until('every request to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 25);
    assert.equal(route(m, '/hello/:name').requests, 20);
    assert.equal(route(m, '/throw').serverErrors, 5);
    assert.equal((m.features.counted as unknown as { sockets: Set<unknown> }).sockets.size, 0, 'no connection watched');
    assert.equal(m.faults, 0);
  } finally {
    session.close();
    await app.close();
  }
});

test('Fastify dev mode times every request', async () => {
  const app = await startApp('Fastify 5', { notice: false, autoProbe: false });
  const m = app.monitor!;
  try {
    for (let i = 0; i < 12; i++) await get(app.port, `/hello/d${i}`);
    await until('every request to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 12);
    assert.equal(route(m, '/hello/:name').timed, 12);
    assert.equal(route(m, '/hello/:name').heapSamples, 12);
  } finally {
    await app.close();
  }
});

// The calm and the load guard put dev mode's recorder in light mode (Recorder.light): it then
// counts on Fastify as production mode does, and every request is timed again when they end.
test('Fastify dev mode counts as production does while its recorder is light (under load), and times every request again after', async () => {
  const app = await startApp('Fastify 5', { notice: false, autoProbe: false, loadRate: 50 });
  const m = app.monitor!;
  const load = m.processFindings.load;
  const hello = route(m, '/hello/:name');
  try {
    for (let i = 0; i < 5; i++) await get(app.port, `/hello/w${i}`);
    await until('the first requests to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 5);
    assert.equal(route(m, '/hello/:name').timed, 5, 'below loadRate every request is timed');

    await flood(app.port, 20_000, 4, () => load.active, '/hello/x');
    assert.equal(load.active, true, 'hundreds of requests a second must trip a guard at 50/s');
    m.recorder.settle();
    const h = route(m, '/hello/:name');
    const before = { requests: h.requests, timed: h.timed };
    const sent = await flood(app.port, 1500, 4, () => !load.active, '/hello/x');
    assert.equal(load.active, true, 'still under load');
    await until('the counted requests to settle', () => m.recorder.inFlight === 0);
    const counted = h.requests - before.requests;
    const timed = h.timed - before.timed;
    assert.equal(counted, sent, 'every request counted, exactly');
    assert.ok(sent >= 50, `enough traffic to tell (${sent})`);
    assert.ok(timed <= sent / 4, `one in sampleEvery (8) timed under load: ${timed} of ${sent}`);

    await until('the load guard to end', () => !load.active, 10_000);
    const after = { timed: h.timed, heapSamples: h.heapSamples };
    for (let i = 0; i < 12; i++) await get(app.port, `/hello/a${i}`);
    await until('the requests to be recorded', () => m.recorder.inFlight === 0 && h.timed - after.timed === 12, 5000);
    assert.equal(h.heapSamples - after.heapSamples, 12, 'a heap delta on every request again');
  } finally {
    await app.close();
  }
});

test('regression: sampled isolation lets in counted requests (Fastify dev mode, recorder light as in the calm) without waiting them out', async (t) => {
  const app = await startApp('Fastify 5', { notice: false, autoProbe: false, checkpointIntervalMs: 100, loadRate: 0, calmBudget: Infinity, samplingInterval: 0 });
  const port = app.port;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  t.after(async () => { agent.destroy(); await app.close(); });
  const m = app.monitor!;
  const detector = m.features.detector as Detector;
  detector.isolateBudgetMs = 40;
  // The calm's state, held: nothing here lets the detector change it (no load guard, no calm).
  m.recorder.light(true);
  let sent = 0;
  while (sent < 8000 && detector.isolatedSamples < 20) {
    await Promise.all(Array.from({ length: 4 }, async () => {
      for (let i = 0; i < 50; i++) assert.equal(await keptAlive(agent, port, `/hello/n${i % 5}`), 200);
    }));
    sent += 200;
  }
  const r = route(m, '/hello/:name');
  m.recorder.settle();
  t.diagnostic(`${detector.isolatedSamples} samples, ${detector.isolateTimeouts} timeouts, ${r.timed} of ${r.requests} timed, ${sent} sent`);
  assert.ok(r.timed * 4 < r.requests, `most requests counted (${r.timed} of ${r.requests} timed)`);
  assert.ok(detector.isolatedSamples >= 20, `isolated samples: ${detector.isolatedSamples} after ${sent} requests`);
  // Before the fix every counted request let in was waited on until ISOLATE_WAIT_MS: seven in eight.
  assert.ok(detector.isolateTimeouts * 4 < detector.isolatedSamples, `${detector.isolateTimeouts} timeouts against ${detector.isolatedSamples} samples`);
});

test('Fastify production: a process warning names the route of a counted request in flight', async () => {
  const app = await startApp('Fastify 5', { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 1000 });
  const m = app.monitor!;
  const name = 'LeakwatchCountedTestWarning';
  try {
    await get(app.port, '/slow'); // the route's first request is timed; the next is counted
    const pending = get(app.port, '/slow');
    await until('the counted request to be in flight', () => m.recorder.inFlight === 1);
    assert.equal(route(m, '/slow').timed, 1);
    process.emitWarning('a warning while /slow is in flight (expected in this test)', name);
    assert.equal((await pending).status, 200);
    let routes: string[] = [];
    for (let i = 0; i < 100 && routes.length === 0; i++) {
      const w = (await get(app.port, '/__leaks/api/status/warnings')).json();
      routes = w.warnings.find((x: { name: string }) => x.name === name)?.routes ?? [];
      if (routes.length === 0) await sleep(10);
    }
    assert.deepEqual(routes, ['GET /slow']);
    assert.equal(route(m, '/slow').requests, 2);
    assert.equal(route(m, '/slow').timed, 1, 'the request in flight was counted, not timed');
  } finally {
    await app.close();
  }
});

test('Fastify production: while a warning waits, the next request on a connection settles the counted one before it', async () => {
  const app = await startApp('Fastify 5', { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 1000 });
  const m = app.monitor!;
  const name = 'LeakwatchKeptAliveWarning';
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const once = (path: string): Promise<number> => keptAlive(agent, app.port, path);
  try {
    for (const p of ['/slow', '/hello/first']) await get(app.port, p); // each route's first is timed
    await until('the first requests to be recorded', () => m.recorder.inFlight === 0 && m.recorder.totalRequests === 2);
    const slow = once('/slow'); // counted, on the kept-alive connection
    await sleep(100);
    process.emitWarning('a warning while /slow is in flight (expected in this test)', name);
    await sleep(20);
    assert.ok(m.recorder.onFinish !== undefined, 'the warning waits for the request in flight');
    assert.equal(await slow, 200);
    // Nothing reads the counts here: the next request on the connection settles /slow.
    assert.equal(await once('/hello/next'), 200);
    assert.equal(m.recorder.onFinish, undefined, 'the warning heard of /slow and stopped waiting');
    const w = (await get(app.port, '/__leaks/api/status/warnings')).json();
    assert.deepEqual(w.warnings.find((x: { name: string }) => x.name === name)?.routes, ['GET /slow']);
  } finally {
    agent.destroy();
    await app.close();
  }
});

test('Fastify production: faults injected into the counted path leave responses byte-identical and nothing in flight', async () => {
  const reqs = [
    'GET /hello/x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'GET /throw HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'GET /stream HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
    'GET /nope?q=1 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n',
  ];
  const transcript = async (port: number): Promise<string[]> => {
    const out: string[] = [];
    for (const r of reqs) out.push((await rawExchange(port, r, () => false)).replace(/\r\ndate: [^\r]*/gi, ''));
    return out;
  };
  const bare = await startApp('Fastify 5', {}, { leakwatch: false });
  let expected: string[];
  try { expected = await transcript(bare.port); } finally { await bare.close(); }
  assert.match(expected[0], /^HTTP\/1\.1 200/);

  const app = await startApp('Fastify 5', { mode: 'production', enabled: true, notice: false, autoProbe: false, sampleEvery: 1000, logger: { info() {}, warn() {} } });
  const m = app.monitor!;
  try {
    // Each route's first request is timed; from the second on, they are counted.
    assert.deepEqual(await transcript(app.port), expected, 'healthy, timed');
    assert.deepEqual(await transcript(app.port), expected, 'healthy, counted');
    const r = m.recorder as any;
    const counted = m.features.counted as any;
    assert.equal(typeof counted?.begin, 'function', 'production mode counts through core/counted.ts');
    const targets: [any, string][] = [[r, 'countsNext'], [counted, 'begin'], [r, 'startCounted'], [r, 'finishCounted'], [counted, 'sweep']];
    for (const [o, name] of targets) {
      const faults0 = m.faults;
      const total0 = m.recorder.totalRequests;
      o[name] = () => { throw new Error(`injected fault in ${name}`); };
      try {
        assert.deepEqual(await transcript(app.port), expected, `with a fault in ${name}`);
        await until(`inFlight back to 0 after a fault in ${name}`, () => m.recorder.inFlight === 0);
        assert.ok(m.faults > faults0, `${name}: the fault was counted`);
      } finally { delete o[name]; }
      // Healthy again: every request recorded.
      const before = m.recorder.totalRequests;
      assert.deepEqual(await transcript(app.port), expected, `after a fault in ${name}`);
      await until(`the requests after ${name} to be recorded`, () => m.recorder.inFlight === 0 && m.recorder.totalRequests === before + reqs.length);
      assert.ok(before >= total0);
    }
  } finally {
    await app.close();
  }
});
