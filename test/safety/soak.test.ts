import { test } from 'node:test';
import assert from 'node:assert/strict';
import { leakTest } from '../../src/index';
import { startSoakApp, drive, liveHeap, soakRequest, MAX_ROUTES, type SoakFlavour } from './soakDriver';

/** What the app must answer, computed from the same generator: 404 for unmatched URLs, else 200. */
function expectedStatuses(from: number, count: number, distinct: number): Record<string, number> {
  const out: Record<string, number> = {};
  for (let i = from; i < from + count; i++) {
    const r = soakRequest(i, distinct);
    const s = r.url.startsWith('/nope/') || r.url.startsWith('/missing/') ? '404' : '200';
    out[s] = (out[s] ?? 0) + 1;
  }
  return out;
}

const MB = 1024 * 1024;

// The full million is `npm run bench:soak`; the suite runs a 160k slice split over both frameworks.
const PLAN: Array<{ flavour: SoakFlavour; requests: number; distinct: number; probeEvery: number }> = [
  { flavour: 'Fastify 5', requests: 120_000, distinct: 100_000, probeEvery: 30_000 },
  { flavour: 'Express 5', requests: 40_000, distinct: 40_000, probeEvery: 8_000 },
];
const WARM = 20_000;

for (const p of PLAN) {
  test(`${p.flavour}: ${p.requests.toLocaleString('en')} requests over ${p.distinct.toLocaleString('en')} distinct URLs plus probes: nothing lost, route table bounded, leakwatch's heap flat`, { timeout: 300_000 }, async () => {
    const app = await startSoakApp(p.flavour, true);
    const m = app.monitor!;
    try {
      const h0 = liveHeap();
      const warm = await drive(app, 0, WARM, p.distinct);
      const h1 = liveHeap();
      const run = await drive(app, WARM, p.requests - WARM, p.distinct, { probeEvery: p.probeEvery });
      const h2 = liveHeap();
      const statuses: Record<string, number> = {};
      for (const s of [warm.statuses, run.statuses]) for (const [k, v] of Object.entries(s)) statuses[k] = (statuses[k] ?? 0) + v;
      assert.deepEqual(statuses, expectedStatuses(0, p.requests, p.distinct), 'every answer as the app gives it');
      assert.equal(m.recorder.totalRequests, p.requests, 'every request recorded once; probe replays not at all');
      assert.equal(m.recorder.inFlight, 0);
      assert.equal(app.unexpected(), 0);
      assert.ok(run.probes >= 2, `${run.probes} probes`);
      assert.deepEqual(Object.keys(run.probeStatuses), ['200'], `probes answered ${JSON.stringify(run.probeStatuses)}`);
      // Bounded table: maxRoutes templates, then one overflow and one unmatched bucket per method.
      const methods = new Set([...m.recorder.routes.values()].map((s) => s.method));
      assert.ok(m.recorder.routes.size <= MAX_ROUTES + 2 * methods.size, `${m.recorder.routes.size} routes for ${methods.size} methods`);
      assert.ok(m.recorder.overflowed > 0, 'templates past maxRoutes went to the overflow bucket');
      assert.equal(m.faults, 0);
      // Flat: after warm-up, the forced-GC heap may move by noise, not by anything per request.
      // The allowance is a fixed step (a backing store doubling, a ring filling up) plus 10 B per
      // request: a leak of one small string per request (50+ B) exceeds it at these counts.
      const growth = h2 - h1;
      const perRequest = growth / (p.requests - WARM);
      const allowance = 1.5 * MB + 10 * (p.requests - WARM);
      assert.ok(growth < allowance, `heap grew ${(growth / MB).toFixed(2)} MB over ${p.requests - WARM} requests (${perRequest.toFixed(1)} B/request); allowed ${(allowance / MB).toFixed(2)} MB`);
      console.log(`# soak ${p.flavour}: ${p.requests} requests, ${p.distinct} distinct URLs, ${run.probes} probes; live heap ${(h0 / MB).toFixed(2)} MB at start, ${(h1 / MB).toFixed(2)} MB after ${WARM} warm-up requests, ${(h2 / MB).toFixed(2)} MB at the end (${perRequest >= 0 ? '+' : ''}${perRequest.toFixed(2)} B/request); ${m.recorder.routes.size} routes, ${m.recorder.overflowed} overflowed; ${((warm.ms + run.ms) / p.requests * 1000).toFixed(0)} µs/request`);
    } finally { await app.close(); }
  });
}

test('dogfood: leakwatch\'s own leakTest finds its middleware stable under soak traffic, and finds a real leak behind it', { timeout: 300_000 }, async () => {
  const app = await startSoakApp('Fastify 5', true);
  try {
    await drive(app, 0, 10_000, 100_000);
    let next = 10_000;
    const batch = 500;
    // 40 B/request: the clean harness read from −4.3 to +11.1 KB per iteration of 500 requests
    // over six CI runs (one more read 10.3 KB, over the 20 B/request this had, and failed), while
    // the control below keeps 2,048 B/request: 50 times the limit.
    const clean = await leakTest(async () => { await drive(app, next, batch, 100_000); next += batch; }, { iterations: 10, warmup: 2, objects: false, thresholdBytes: 40 * batch });
    assert.equal(clean.verdict, 'stable', clean.summary);
    // The same harness on a route that keeps 2 KB per request must say leaking: the check can fail.
    let n = 0;
    const leaky = await leakTest(async () => {
      const all: Promise<number>[] = [];
      for (let i = 0; i < batch; i++) all.push(app.send('GET', `/leak/${n++}`));
      await Promise.all(all);
      // light-my-request finishes each response in an Immediate that still holds it: let them run,
      // or the fake request objects are counted as retained (about 10 KB each).
      await new Promise((r) => setImmediate(r));
    }, { iterations: 8, warmup: 1, objects: false, thresholdBytes: 20 * batch });
    assert.equal(leaky.verdict, 'leaking', leaky.summary);
    const perRequest = leaky.retainedBytesPerIteration / batch;
    assert.ok(perRequest > 2048 * 0.9 && perRequest < 2048 * 1.5, `${perRequest.toFixed(0)} B/request for a kept 2,048-character string`);
    console.log(`# dogfood: ${batch} soak requests per iteration: ${clean.verdict} (${clean.retainedBytesPerIteration.toFixed(0)} B/iteration, ${(clean.retainedBytesPerIteration / batch).toFixed(2)} B/request); control route: ${leaky.verdict} (${(leaky.retainedBytesPerIteration / batch).toFixed(0)} B/request for a kept 2,048-character string)`);
  } finally { await app.close(); }
});
