import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Detector } from '../../src/core/detector';
import { heapSampler } from '../../src/core/heapsampler';
import { flood, get, serveExpressDev as serve, sleep } from '../helpers';

// Dev mode steps back under load (the `loadRate` option, src/core/detector.ts watchLoad): above
// the rate it takes no checkpoint and stops the sampling heap profiler; below 80% of it both come
// back, with the profiler on a new run. The rates here are far apart (a few requests per second
// against hundreds or thousands, with the guard at 100/s), so the test cannot flake on timing.

/** A few requests per second, for `ms`. */
async function trickle(port: number, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) { await get(port, '/hit'); await sleep(100); }
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
