import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fitSampled, sampledSignal, dataDependence } from '../../src/core/analysis/sampled';
import { decideVerdict } from '../../src/core/analysis/verdict';
import { mulberry32 } from '../helpers';

// Synthetic readings as the sampling heap profiler produces them: each object kept is sampled
// with probability 1 − e^(−size/interval) and then weighs size / probability.
const I = 8192;

interface Series { bytes: number[]; counts: number[] }

/**
 * `perCheckpoint` requests between readings; `keep(i, rng)` = objects (sizes) request i keeps;
 * `free(level, rng)` = objects (sampled weights) freed at a checkpoint.
 */
function simulate(seed: number, readings: number, perCheckpoint: number, keep: (i: number) => number[], free?: (live: number[], rng: () => number) => void): Series {
  const rng = mulberry32(seed);
  const live: number[] = [];
  const bytes: number[] = [];
  const counts: number[] = [];
  let n = 0;
  for (let k = 0; k < readings; k++) {
    if (k > 0) {
      for (let j = 0; j < perCheckpoint; j++) {
        for (const size of keep(n)) {
          const p = 1 - Math.exp(-size / I);
          if (rng() < p) live.push(size / p);
        }
        n++;
      }
      free?.(live, rng);
    }
    bytes.push(live.reduce((a, v) => a + v, 0));
    counts.push(n);
  }
  return { bytes, counts };
}

const verdictOf = (s: Series): string => {
  const sampled = sampledSignal(s.bytes, s.counts, { interval: I });
  return decideVerdict({ windowRequests: s.counts[s.counts.length - 1] - s.counts[0], checkpoints: s.counts.length, sampled }).verdict;
};

test('sampled slope: a steady 1 KB/request leak reads within 25% over 2,000 requests, z well above 4', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const s = simulate(seed, 21, 100, () => [1040]);
    const f = fitSampled(s.bytes, s.counts, { interval: I })!;
    assert.ok(Math.abs(f.estimate / 1040 - 1) < 0.25, `seed ${seed}: ${f.estimate}`);
    assert.ok(f.z > 4, `seed ${seed}: z ${f.z}`);
    assert.ok(f.low < 1040 + 1 && 1040 < f.high + 1 || Math.abs(f.estimate - 1040) < 3 * f.se, `seed ${seed}: interval`);
    assert.equal(verdictOf(s), 'growing');
  }
});

test('sampled slope: a route that keeps nothing is stable, across seeds', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const s = simulate(seed, 21, 100, () => []);
    assert.equal(verdictOf(s), 'stable', `seed ${seed}`);
  }
});

test('sampled slope: a plateau (a cache that fills, then churns at its capacity) is never growing', () => {
  for (let seed = 1; seed <= 20; seed++) {
    // 50 entries of 1 KB; every request inserts one and, once full, evicts the oldest.
    const cap = 50;
    const rng = mulberry32(seed + 100);
    const entries: number[] = [];
    const bytes: number[] = [];
    const counts: number[] = [];
    let n = 0;
    for (let k = 0; k < 25; k++) {
      if (k > 0) {
        for (let j = 0; j < 60; j++, n++) {
          const p = 1 - Math.exp(-1040 / I);
          entries.push(rng() < p ? 1040 / p : 0);
          if (entries.length > cap) entries.shift();
        }
      }
      bytes.push(entries.reduce((a, v) => a + v, 0));
      counts.push(n);
    }
    const v = verdictOf({ bytes, counts });
    assert.notEqual(v, 'growing', `seed ${seed}`);
  }
});

test('sampled slope: a step (lazy init of 256 KB) then flat reads warming-up or stable, never growing', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const s = simulate(seed, 21, 100, (i) => (i === 150 ? Array(256).fill(1024) : []));
    assert.notEqual(verdictOf(s), 'growing', `seed ${seed}`);
  }
});

test('sampled slope: a leak on every 10th request only (10 KB) reads within 25% of 1 KB/request', () => {
  for (let seed = 1; seed <= 20; seed++) {
    const s = simulate(seed, 21, 100, (i) => (i % 10 === 9 ? [10256] : []));
    const f = fitSampled(s.bytes, s.counts, { interval: I })!;
    assert.ok(Math.abs(f.estimate / 1025.6 - 1) < 0.25, `seed ${seed}: ${f.estimate}`);
    assert.equal(verdictOf(s), 'growing', `seed ${seed}`);
  }
});

test('sampled slope: readings missing before the trampoline existed (NaN) are skipped', () => {
  const s = simulate(3, 21, 100, () => [2048]);
  const withGap = s.bytes.map((b, i) => (i < 5 ? NaN : b));
  const f = fitSampled(withGap, s.counts, { interval: I })!;
  assert.equal(f.requests, s.counts[20] - s.counts[5]);
  assert.equal(f.checkpoints, 16);
  assert.equal(fitSampled([NaN, NaN, 5], [0, 1, 2], { interval: I }), undefined);
});

test('regression (profiler restarted after a load episode): readings of two profiler runs are never differenced across the restart', () => {
  // A 1 KB/request leak read over two runs of the profiler: the second starts from nothing again,
  // and 5,000 requests of a load test in between went unsampled.
  const a = simulate(5, 11, 100, () => [1040]);
  const b = simulate(6, 11, 100, () => [1040]);
  const bytes = [...a.bytes, ...b.bytes];
  const counts = [...a.counts, ...b.counts.map((c) => c + a.counts[10] + 5000)];
  const runs = [...a.bytes.map(() => 0), ...b.bytes.map(() => 1)];
  const f = fitSampled(bytes, counts, { interval: I, runs })!;
  assert.equal(f.requests, 2000, 'the load test\'s requests are not in the fit');
  assert.equal(f.growth, a.bytes[10] - a.bytes[0] + b.bytes[10] - b.bytes[0]);
  assert.ok(Math.abs(f.estimate - 1040) / 1040 < 0.25, `estimate ${f.estimate}`);
  // Without the runs, the drop to zero and the unsampled load would read as a fraction of the leak.
  const naive = fitSampled(bytes, counts, { interval: I })!;
  assert.ok(naive.estimate < 1040 / 2, `naive ${naive.estimate}`);
  assert.equal(dataDependence(bytes, { interval: I, runs }), undefined, 'a restart is not the data shrinking');
  const both = sampledSignal(bytes, counts, { interval: I, runs })!;
  assert.ok(both.recent !== undefined && Math.abs(both.recent.estimate - 1040) / 1040 < 0.35);
});

test('data dependence: a random walk of a large table rises and falls; a leak and a churning cache do not', () => {
  const rng = mulberry32(9);
  // Live bytes of a table whose size wanders between 0 and 4 MB.
  let level = 1e6;
  const walk = Array.from({ length: 30 }, () => { level = Math.max(0, Math.min(4e6, level + (rng() - 0.5) * 1.6e6)); return level; });
  const dd = dataDependence(walk, { interval: I });
  assert.ok(dd !== undefined, 'the walk is data-dependent');
  assert.ok(dd.fell > 0 && dd.rose > 0 && dd.high > dd.low);
  const leak = simulate(4, 21, 100, () => [1040]);
  assert.equal(dataDependence(leak.bytes, { interval: I }), undefined, 'a leak never falls back');
  // A full cache churning at ~52 KB: rises and falls, but only by sampling noise.
  const churn = Array.from({ length: 30 }, () => 52e3 + (rng() - 0.5) * 50e3);
  assert.equal(dataDependence(churn, { interval: I }), undefined, 'a churning plateau is not data-dependent');
});

test('a 50-entry LRU filling inside the window, then churning, never reads growing three analyses in a row (400 seeded runs at 8192, 4096 and 2048; regression)', () => {
  for (const interval of [8192, 4096, 2048]) {
  let confirmed = 0;
  let young = 0;
  for (let seed = 1; seed <= 400; seed++) {
    const rng = mulberry32(seed + 1000);
    const entries: number[] = [];
    const bytes: number[] = [];
    const counts: number[] = [];
    let n = 0;
    let streak = 0;
    for (let k = 0; k < 30; k++) {
      if (k > 0) {
        // A varying share of the traffic: 0–39 requests of this route between readings.
        const m = Math.floor(rng() * 40);
        for (let j = 0; j < m; j++, n++) {
          const p = 1 - Math.exp(-1040 / interval);
          entries.push(rng() < p ? 1040 / p : 0);
          if (entries.length > 50) entries.shift();
        }
      }
      bytes.push(entries.reduce((a, v) => a + v, 0));
      counts.push(n);
      if (n < 60) continue;
      const v = decideVerdict({ windowRequests: n, checkpoints: bytes.length, sampled: sampledSignal(bytes, counts, { interval }) });
      if (v.reason.includes('still filling')) young++;
      streak = v.verdict === 'growing' ? streak + 1 : 0;
      if (streak === 3) confirmed++;
    }
  }
  assert.equal(confirmed, 0, `interval ${interval}`);
  assert.ok(young > 0, 'the filling phase is reported as such at least once');
  }
});

test('a young leak reads warming-up ("still filling") until it has grown 12 sampling intervals, then growing', () => {
  let stillFilling = 0;
  for (let seed = 1; seed <= 20; seed++) {
    const s = simulate(seed, 41, 10, () => [1040]); // 400 requests, ~416 KB kept in all
    for (let k = 6; k <= 40; k++) {
      const sampled = sampledSignal(s.bytes.slice(0, k + 1), s.counts.slice(0, k + 1), { interval: I })!;
      const v = decideVerdict({ windowRequests: s.counts[k], checkpoints: k + 1, sampled });
      if (v.verdict === 'growing') assert.ok(sampled.all.growth >= 12 * I, `seed ${seed} at ${k}: growing after ${sampled.all.growth} B`);
      if (v.reason.includes('still filling')) stillFilling++;
    }
    assert.equal(verdictOf(s), 'growing', `seed ${seed} at 400 requests`);
  }
  assert.ok(stillFilling > 0);
});
