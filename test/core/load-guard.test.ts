import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';
import { leakwatch } from '../../src/express/index';
import type { Detector } from '../../src/core/detector';
import { heapSampler } from '../../src/core/heapsampler';
import { close, get, listen } from '../helpers';

// Dev mode steps back under load (the `loadRate` option, src/core/detector.ts watchLoad): above
// the rate it takes no checkpoint and stops the sampling heap profiler; below 80% of it both come
// back, with the profiler on a new run. The rates here are far apart (a few requests per second
// against hundreds or thousands, with the guard at 100/s), so the test cannot flake on timing.

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Flat out on `conns` keep-alive connections until `until` returns true or `ms` pass. */
async function flood(port: number, ms: number, conns: number, until: () => boolean): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const end = Date.now() + ms;
  let done = 0;
  const one = (): Promise<void> => new Promise((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path: '/hit', agent }, (res) => { res.resume(); res.on('end', () => { done++; resolve(); }); }).on('error', reject);
  });
  await Promise.all(Array.from({ length: conns }, async () => { while (Date.now() < end && !until()) await one(); }));
  agent.destroy();
  return done;
}

/** A few requests per second, for `ms`. */
async function trickle(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) { await get(port, '/hit'); await sleep(100); }
}

/** An Express app with leakwatch in dev mode and one route, `GET /hit`; closed after the test. */
async function serve(t: { after(fn: () => Promise<void>): void }, options: Record<string, unknown>): Promise<{ port: number; mw: ReturnType<typeof leakwatch> }> {
  const app = express();
  const mw = leakwatch({ notice: false, mode: 'dev', autoProbe: false, ...options });
  app.use(mw);
  app.get('/hit', (_req, res) => { res.json({ ok: true }); });
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(async () => { mw.close(); await close(server); });
  return { port, mw };
}

test('dev mode steps back under load: no checkpoint and no heap profiler above loadRate, both back below it', async (t) => {
  const { port, mw } = await serve(t, { loadRate: 100, checkpointIntervalMs: 200 });
  const m = mw.monitor;
  const det = m.features.detector as Detector;
  const load = m.processFindings.load;

  await trickle(port, 1500);
  assert.equal(load.active, false, `a few requests per second must not count as load (read ${load.requestsPerSecond}/s)`);
  assert.ok(det.taken >= 2, `checkpoints run at a developer's pace (took ${det.taken})`);
  assert.equal(heapSampler.active, true);
  const before = det.window();
  assert.ok(before.sampledRuns.every((r) => r === 0));

  // Flat out until the guard engages (it judges one-second windows). Meanwhile no checkpoint may
  // force a GC into the load: requests since the last one already arrive too fast (at most one can
  // have started on a tick that saw only the trickle; without the check, checkpoints ran every
  // 125–400 ms here).
  const takenBefore = det.taken;
  const sent = await flood(port, 5000, 8, () => load.active);
  assert.ok(det.taken - takenBefore <= 1, `${det.taken - takenBefore} checkpoints in the first second of the load`);
  assert.equal(load.active, true, `${sent} requests flat out must engage the guard (last window ${load.requestsPerSecond}/s)`);
  assert.ok(load.requestsPerSecond > 100);
  assert.equal(load.episodes, 1);
  assert.equal(heapSampler.active, false, 'the profiler stops under load');
  // Stay under load for a while: no checkpoint may run meanwhile, and the recorder reads heap
  // deltas on sampled requests only (one in sampleEvery = 8), as production mode does.
  const takenAtLoad = det.taken;
  const hit = (): { requests: number; heapSamples: number } => { const r = m.route('GET', '/hit')!; return { requests: r.requests, heapSamples: r.heapSamples }; };
  const light0 = hit();
  const [, page, api] = await Promise.all([flood(port, 1500, 8, () => false), sleep(700).then(() => get(port, '/__leaks')), sleep(800).then(() => get(port, '/__leaks/api/process'))]);
  assert.equal(load.active, true);
  assert.equal(det.taken, takenAtLoad, 'no checkpoint while under load');
  const light1 = hit();
  const dReq = light1.requests - light0.requests;
  const dHeap = light1.heapSamples - light0.heapSamples;
  assert.ok(dReq > 100 && dHeap <= dReq / 4, `heap deltas on ${dHeap} of ${dReq} requests under load`);
  const tickMs = (): number => (det as unknown as { timer: { _idleTimeout: number } }).timer._idleTimeout;
  assert.equal(tickMs(), 250, 'the detector wakes up less often while it only watches the rate');
  assert.equal(page.status, 200);
  assert.match(page.body, /id="load-guard"[^>]*>Under load \([\d,]+ requests\/s/, 'the dashboard says why detection paused');
  assert.equal(api.json().findings.load.active, true);
  assert.ok(api.json().findings.load.requestsPerSecond > 100);

  // Back to a trickle: the guard lets go at its next window, the profiler restarts on a new run,
  // and checkpoints resume.
  await trickle(port, 2500);
  assert.equal(load.active, false, `read ${load.requestsPerSecond}/s`);
  assert.equal(heapSampler.active, true, 'the profiler is back');
  assert.ok(det.taken > takenAtLoad, 'checkpoints resumed');
  assert.equal(tickMs(), 25);
  const after = det.window();
  assert.ok(after.sampledRuns.includes(1), 'readings after the load belong to a new profiler run');
  assert.equal(load.episodes, 1);
  assert.doesNotMatch((await get(port, '/__leaks')).body, /id="load-guard"/);
  const full0 = hit();
  for (let i = 0; i < 5; i++) await get(port, '/hit');
  const full1 = hit();
  assert.equal(full1.heapSamples - full0.heapSamples, 5, 'every request has its heap delta again');
});

test('loadRate: 0 never steps back', async (t) => {
  const { port, mw } = await serve(t, { loadRate: 0, samplingInterval: 0 });
  const load = mw.monitor.processFindings.load;
  await flood(port, 2500, 8, () => false);
  assert.ok(load.requestsPerSecond > 100, `the rate is still measured (${load.requestsPerSecond}/s)`);
  assert.equal(load.active, false);
  assert.equal(load.episodes, 0);
});
