import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Gate, MAX_CLOSE_MS } from '../../src/core/gate';
import { snapshotPreflight } from '../../src/core/status/snapshot';
import { checkSnapshotMemory, SnapshotRefusedError } from '../../src/core/probe/snapshot';
import { get, postJson } from '../helpers';
import { startApp, captureLogger } from './apps';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const timers = () => process.getActiveResourcesInfo().filter((t) => t === 'Timeout').length;

test('Gate: a close with a short max reopens by itself; held requests are let in; nothing waits forever', async (t) => {
  const g = new Gate();
  // In a server the held requests' sockets keep the loop alive; here a ref'd timer stands in,
  // since the gate's own deadline timer is unref()ed.
  const keepAlive = setInterval(() => {}, 1000);
  t.after(() => clearInterval(keepAlive));
  assert.equal(g.admit(), undefined, 'open gate: no promise, no allocation');
  const t0 = performance.now();
  const token = g.close(60);
  assert.ok(token !== undefined);
  assert.equal(g.close(10), undefined, 'one owner at a time');
  const waits = [g.admit(), g.admit(), g.admit()];
  assert.ok(waits.every((w) => w instanceof Promise));
  assert.equal(g.queued, 3);
  // The owner "forgets" to open (a probe that hangs or throws): the deadline opens it.
  const released = await Promise.all(waits.map((w) => w!.then(() => performance.now() - t0)));
  for (const ms of released) assert.ok(ms >= 50 && ms < 1000, `released after ${ms.toFixed(0)} ms`);
  assert.equal(g.closed, false);
  assert.equal(g.queued, 0);
  assert.equal(g.held, 3);
  assert.ok(g.longestHoldMs >= 50);
  assert.equal(g.admit(), undefined, 'requests after the deadline pass straight through');
  // The expired owner's late open() must not open someone else's close.
  const t2 = g.close(10_000)!;
  g.open(token!);
  assert.equal(g.closed, true, 'a stale token opens nothing');
  const w = g.admit()!;
  g.open(t2);
  await w;
  assert.equal(g.closed, false);
});

test('Gate: dispose (monitor.close) lets every held request in; the deadline timer never holds the process', async () => {
  const g = new Gate();
  const before = timers();
  const token = g.close(MAX_CLOSE_MS);
  assert.equal(timers(), before, 'the deadline timer is unref()ed');
  const w = g.admit()!;
  g.dispose();
  await w;
  assert.equal(g.closed, false);
  g.open(token!); // harmless after dispose
  // Absurd maxima are clamped: no TimeoutOverflowWarning, no instant reopen, no NaN.
  const warnings: string[] = [];
  const onWarning = (e: Error) => warnings.push(e.name);
  process.on('warning', onWarning);
  try {
    for (const bad of [Number.MAX_SAFE_INTEGER, Infinity, NaN, -5]) {
      const t = g.close(bad)!;
      assert.ok(t !== undefined);
      assert.ok(g.remainingMs() <= MAX_CLOSE_MS, `${bad}: remaining ${g.remainingMs()}`);
      if (bad !== -5) assert.ok(g.remainingMs() > 1000, `${bad} does not reopen at once`);
      g.open(t);
    }
    await sleep(20);
    assert.deepEqual(warnings, []);
  } finally { process.off('warning', onWarning); }
});

test('a probe that times out answers 504, reopens the gate, and every held request completes', { timeout: 60_000 }, async () => {
  const cap = captureLogger();
  const app = await startApp('Express 5', { logger: cap.logger, notice: false, autoProbe: false });
  const m = app.monitor!;
  try {
    assert.equal((await get(app.port, '/slow')).status, 200); // the route to replay: 300 ms per request
    await get(app.port, '/hello/warm');
    const t0 = performance.now();
    // 30 iterations x 300 ms cannot fit in 1 s.
    const probe = postJson(app.port, '/__leaks/api/probe', { method: 'GET', route: '/slow', iterations: 30, warmup: 1, objects: false, timeoutMs: 1000 });
    await sleep(150);
    assert.equal(m.gate.closed, true, 'the probe holds the gate');
    // App requests arriving meanwhile wait at the gate, then complete.
    const held = Array.from({ length: 5 }, (_, i) => get(app.port, `/hello/held${i}`).then((r) => ({ r, ms: performance.now() - t0 })));
    const busy = await postJson(app.port, '/__leaks/api/probe', { method: 'GET', route: '/hello/:name', objects: false });
    assert.equal(busy.status, 409, 'one probe at a time');
    const p = await probe;
    const probeMs = performance.now() - t0;
    assert.equal(p.status, 504, p.body);
    assert.match(p.json().error, /timed out/);
    assert.match(p.json().error, /gate was reopened/);
    assert.equal(m.gate.closed, false);
    assert.equal(m.gate.queued, 0);
    const done = await Promise.all(held);
    for (const { r, ms } of done) {
      assert.equal(r.status, 200);
      assert.ok(ms < probeMs + 1000, `a held request finished ${ms.toFixed(0)} ms in, the probe ended at ${probeMs.toFixed(0)}`);
    }
    assert.ok(probeMs < 5000, `the 1 s timeout was kept within 5 s (took ${probeMs.toFixed(0)} ms)`);
    console.log(`# probe with timeoutMs 1000 answered 504 after ${probeMs.toFixed(0)} ms; ${done.length} held requests finished by ${Math.max(...done.map((d) => d.ms)).toFixed(0)} ms`);
    const progress = (await get(app.port, '/__leaks/api/probe')).json();
    assert.equal(progress.running, false);
    assert.match(String(progress.error), /timed out/);
    // Afterwards requests go straight through, and the next probe is accepted.
    const t1 = performance.now();
    assert.equal((await get(app.port, '/hello/after')).status, 200);
    assert.ok(performance.now() - t1 < 500);
    const ok = await postJson(app.port, '/__leaks/api/probe', { method: 'GET', route: '/hello/:name', iterations: 3, warmup: 1, objects: false });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(m.gate.closed, false);
    assert.equal(m.faults, 0);
  } finally { await app.close(); }
});

test('probe input under pressure: absurd iterations and bad fields are 400s that never touch the gate', async () => {
  const app = await startApp('Fastify 5', { notice: false, autoProbe: false });
  try {
    await get(app.port, '/hello/x');
    const cases: Array<[unknown, RegExp]> = [
      [{ method: 'GET', route: '/hello/:name', iterations: 1e9 }, /iterations/],
      [{ method: 'GET', route: '/hello/:name', iterations: -1 }, /iterations/],
      [{ method: 'GET', route: '/hello/:name', iterations: 1.5 }, /iterations/],
      [{ method: 'GET', route: '/hello/:name', iterations: '30' }, /iterations/],
      [{ method: 'GET', route: '/hello/:name', iterations: null }, /iterations/],
      [{ method: 'GET', route: '/hello/:name', warmup: 1e6 }, /warmup/],
      [{ method: 'GET', route: '/hello/:name', timeoutMs: 1e12 }, /timeoutMs/],
      [{ method: 'GET', route: '/hello/:name', unsafe: 'yes' }, /unsafe/],
      [{ method: 'GET', route: '/hello/:name', extra: 1 }, /unknown field/],
      [{ method: 7, route: '/hello/:name' }, /method/],
      [{ method: 'GET /x', route: '/hello/:name' }, /method/],
      [{ method: 'GET', route: 'x'.repeat(5000) }, /route/],
      [{ method: 'GET' }, /route/],
    ];
    for (const [body, re] of cases) {
      const r = await postJson(app.port, '/__leaks/api/probe', body);
      assert.equal(r.status, 400, `${JSON.stringify(body).slice(0, 80)}: ${r.body}`);
      assert.match(r.json().error, re);
    }
    const nf = await postJson(app.port, '/__leaks/api/probe', { method: 'GET', route: '/never/seen' });
    assert.equal(nf.status, 404);
    assert.equal(app.monitor!.gate.held, 0, 'no request was ever held');
  } finally { await app.close(); }
});

test('heap snapshots are refused with a clear message when free memory is too low', async () => {
  // The pure decisions (free memory cannot be lowered from a test on a shared machine).
  const pre = snapshotPreflight(50e6, 200e6);
  assert.equal(pre.ok, false);
  assert.match(pre.reason, /not enough free memory for a heap snapshot: a 50 MB heap needs about \d+ MB .* only 200 MB is available/);
  assert.ok(pre.needed > 50e6 * 10);
  assert.equal(snapshotPreflight(50e6, 64e9).ok, true);
  assert.throws(() => checkSnapshotMemory(10 * 1024 * 1024), (e: unknown) => e instanceof SnapshotRefusedError && /not enough free memory for a heap snapshot/.test(e.message) && /"objects": false/.test(e.message));
  assert.doesNotThrow(() => checkSnapshotMemory(Number.MAX_SAFE_INTEGER));
  // What the download page and its JSON say on this machine is consistent with the rule.
  const app = await startApp('Express 5', { notice: false });
  try {
    const r = (await get(app.port, '/__leaks/api/heap-snapshot')).json();
    assert.equal(r.ok, r.available >= r.needed);
    assert.match(r.warning, /secret/i);
  } finally { await app.close(); }
});
