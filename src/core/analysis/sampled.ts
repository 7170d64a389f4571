import type { Coefficient } from './regression';

/**
 * Retention per request from the sampling heap profiler's live bytes of one route.
 *
 * The series is the route's live sampled bytes after each checkpoint's full GC, against the
 * route's own cumulative request count: no other route's traffic enters it, so unlike the heap
 * regression it needs no variation of the route mix. What is left is sampling noise: the profiler
 * keeps an object with probability 1 − e^(−size/interval) and weighs it up accordingly, so the
 * bytes arrive in lumps of about `interval` bytes (or the object's size, when larger).
 *
 * Estimate: total growth over total requests (the increments are independent, and their variance
 * grows with the requests in each interval, so this ratio is the efficient one). Its variance is
 * the larger of the spread of the increments around it and the sampling floor `interval` × bytes
 * per request (a compound Poisson process), so a handful of lucky samples cannot look
 * significant: z = 4 needs about 16 samples' worth of growth.
 */
/** Pseudo-intervals of the sampling floor blended into the observed spread. */
const PRIOR = 4;

export interface SampledOptions {
  /** The profiler's mean sampling interval in bytes. */
  interval: number;
  /**
   * The profiler run each reading belongs to (optional). The profiler forgets every sample when it
   * stops, so levels of two runs are not comparable: no increment is taken across a change of
   * run, and the requests in between count for nothing (their bytes were never sampled).
   */
  runs?: ArrayLike<number>;
}

/** A fit plus what it rests on: requests and checkpoints with a reading. */
export interface SampledCoefficient extends Coefficient {
  requests: number;
  checkpoints: number;
  /** Net growth of the sampled level over the fit, and the sampling interval, in bytes. */
  growth: number;
  interval: number;
}

/**
 * Fits `bytes[from..to]` against `counts[from..to]`. Entries of `bytes` that are not finite
 * (no trampoline yet at that checkpoint) are skipped. Undefined when fewer than 3 readings or no
 * request in between.
 *
 * @example
 * ```ts
 * const counts = [0, 10, 20, 30, 40];
 * fitSampled(counts.map((n) => 1000 * n), counts, { interval: 8192 })?.estimate; // 1000
 * ```
 */
export function fitSampled(bytes: ArrayLike<number>, counts: ArrayLike<number>, o: SampledOptions, from = 0, to = bytes.length - 1): SampledCoefficient | undefined {
  const dB: number[] = [];
  const dN: number[] = [];
  let prev = -1;
  let pendB = 0;
  let pendN = 0;
  let readings = 0;
  let total = 0;
  const runs = o.runs;
  for (let i = Math.max(0, from); i <= to && i < bytes.length; i++) {
    if (!Number.isFinite(bytes[i])) continue;
    readings++;
    if (prev < 0) { prev = i; continue; }
    if (runs !== undefined && runs[i] !== runs[prev]) { prev = i; continue; }
    // An interval without requests of this route folds into the next one: bytes can only be
    // born during the route's own requests, and a division by zero requests has no meaning.
    pendB += bytes[i] - bytes[prev];
    pendN += counts[i] - counts[prev];
    total += bytes[i] - bytes[prev];
    prev = i;
    if (pendN > 0) { dB.push(pendB); dN.push(pendN); pendB = 0; pendN = 0; }
  }
  if (readings < 3) return undefined;
  let sumN = 0;
  for (const n of dN) sumN += n;
  if (sumN <= 0) return undefined;
  const b = total / sumN;
  let phi = 0;
  for (let k = 0; k < dB.length; k++) phi += (dB[k] - b * dN[k]) ** 2 / dN[k];
  // The spread of a few increments is itself noisy (at 8 readings it scattered by ±50% on the
  // zoo and hid a 1 KB/request leak): blend it with the sampling floor, as if PRIOR more
  // intervals had shown exactly the floor. A control whose live bytes churn keeps most of its
  // spread; a steady leak's spread is about the floor anyway.
  // The floor counts every byte that moved, not the net: a leak's sampled level only ever rises
  // (its objects never die), so for a leak the two agree; a full cache churning at capacity moves
  // a sample in for each one out, and its noise is that of the gross movement (an LRU filled in
  // the window read growing in 1% of simulated analyses with the net floor, none with this one).
  let gross = 0;
  for (const d of dB) gross += Math.abs(d);
  const floor = Math.max(b, gross / sumN, 0) * o.interval;
  const dof = Math.max(0, dB.length - 1);
  phi = dof > 0 ? (phi + PRIOR * floor) / (dof + PRIOR) : floor;
  phi = Math.max(phi, floor);
  const se = Math.sqrt(phi / sumN);
  const z = se > 0 ? b / se : (b > 0 ? Infinity : 0);
  return {
    estimate: Math.max(0, b),
    unconstrained: b,
    se,
    low: b - 1.96 * se,
    high: b + 1.96 * se,
    z,
    requests: sumN,
    checkpoints: readings,
    growth: total,
    interval: o.interval,
  };
}

/**
 * Whole window and its recent half, as the verdict wants them.
 *
 * @example
 * ```ts
 * const counts = [0, 50, 100, 150, 200, 250];
 * sampledSignal(counts.map((n) => 1040 * n), counts, { interval: 8192 })?.recent?.estimate; // 1040
 * ```
 */
export function sampledSignal(bytes: ArrayLike<number>, counts: ArrayLike<number>, o: SampledOptions): { all: SampledCoefficient; recent?: SampledCoefficient } | undefined {
  const all = fitSampled(bytes, counts, o);
  if (all === undefined) return undefined;
  const L = bytes.length;
  const recent = fitSampled(bytes, counts, o, Math.floor((L - 1) / 2), L - 1);
  return { all, recent };
}

/** Memory that follows the data: live bytes that went up and came back down. */
export interface DataDependence {
  /** Sum of the rises and of the falls between readings, in bytes. */
  rose: number;
  fell: number;
  /** Highest and lowest reading in the window. */
  high: number;
  low: number;
}

/**
 * "Growth that only follows changing data" (the seed: data that changes between requests makes a
 * process grow and shrink): the route's live bytes moved over a range far wider than sampling
 * noise, and came back down by at least half of what they rose. The range must exceed both
 * `minSamples` sampling intervals and six times the noise of the highest level (√(level ×
 * interval)), so a full cache that only churns (new entries in, old ones out, the level flat)
 * does not count. Returns undefined when the route does not look like that.
 *
 * @example
 * ```ts
 * dataDependence([0, 2e6, 5e5, 2.6e6, 4e5, 1.8e6], { interval: 8192 }); // { rose: 5.5e6, fell: 3.7e6, … }
 * ```
 */
export function dataDependence(bytes: ArrayLike<number>, o: SampledOptions & { minSamples?: number }): DataDependence | undefined {
  let rose = 0; let fell = 0; let prev = NaN; let prevRun = NaN; let high = -Infinity; let low = Infinity;
  for (let i = 0; i < bytes.length; i++) {
    const v = bytes[i];
    if (!Number.isFinite(v)) continue;
    // A restarted profiler starts from nothing: that drop is not the data shrinking.
    const run = o.runs === undefined ? 0 : o.runs[i];
    if (Number.isFinite(prev) && run === prevRun) { if (v > prev) rose += v - prev; else fell += prev - v; }
    prev = v;
    prevRun = run;
    if (v > high) high = v;
    if (v < low) low = v;
  }
  if (!Number.isFinite(high)) return undefined;
  const min = Math.max((o.minSamples ?? 16) * o.interval, 6 * Math.sqrt(Math.max(0, high) * o.interval));
  if (high - low < min || fell < rose / 2) return undefined;
  return { rose, fell, high, low };
}
