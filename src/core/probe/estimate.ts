/**
 * Retained bytes per iteration from a series of live-heap readings, one after each forced full GC.
 *
 * Why not a plain slope: Array and Map backing stores grow by doubling, so a series can carry one
 * large step that is not a per-iteration cost (MEASURING.md §2), while a leak that happens only
 * every Nth iteration is made of nothing but steps. The rule here:
 * - take the per-iteration differences d[i];
 * - call a difference an outlier when it is far from their median (robust spread, MAD);
 * - a lone outlier in one direction is a one-off (a backing store doubling, a lazy init, a cache
 *   eviction) and is left out; two or more in the same direction are a pattern (a leak every Nth
 *   iteration) and stay in;
 * - the estimate is the mean of the differences kept, which is the total growth over the window
 *   when nothing was left out (the most precise figure for a steady leak: noise only at the ends).
 * A leak every Nth iteration therefore needs at least 2N measured iterations to be told from a
 * one-off; the default 30 covers every 15th.
 */
export interface SlopeEstimate {
  /** Bytes retained per iteration. */
  perIteration: number;
  /** Standard error of that mean, from the spread of the kept differences. */
  standardError: number;
  /** Indices (into the differences) left out as one-off jumps. */
  excluded: number[];
  /** Outliers that recurred and were kept (periodic growth). */
  periodicSteps: number;
  /** The per-iteration differences. */
  diffs: number[];
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * @param series readings (bytes) taken after each iteration, with the reading before the first
 *   measured iteration at index 0: length = iterations + 1.
 * @param floor differences within this many bytes of the median are never outliers (GC noise).
 */
export function estimateSlope(series: readonly number[], floor = 512): SlopeEstimate {
  const diffs: number[] = [];
  for (let i = 1; i < series.length; i++) diffs.push(series[i] - series[i - 1]);
  const n = diffs.length;
  if (n === 0) return { perIteration: 0, standardError: Infinity, excluded: [], periodicSteps: 0, diffs };
  const med = median(diffs);
  const mad = median(diffs.map((d) => Math.abs(d - med))) * 1.4826;
  const limit = Math.max(6 * mad, floor);
  const up: number[] = [];
  const down: number[] = [];
  for (let i = 0; i < n; i++) {
    if (diffs[i] - med > limit) up.push(i);
    else if (med - diffs[i] > limit) down.push(i);
  }
  const excluded: number[] = [];
  if (up.length === 1) excluded.push(up[0]);
  if (down.length === 1) excluded.push(down[0]);
  const periodicSteps = (up.length > 1 ? up.length : 0) + (down.length > 1 ? down.length : 0);
  let sum = 0;
  let kept = 0;
  for (let i = 0; i < n; i++) {
    if (excluded.includes(i)) continue;
    sum += diffs[i];
    kept++;
  }
  const mean = kept > 0 ? sum / kept : 0;
  // Noise is judged on the ordinary differences only: recurring steps are the signal of a
  // periodic leak, and counting them as spread would hide exactly that leak.
  const outlier = new Set([...up, ...down]);
  let ordinary = 0;
  let osum = 0;
  for (let i = 0; i < n; i++) if (!outlier.has(i)) { osum += diffs[i]; ordinary++; }
  const omean = ordinary > 0 ? osum / ordinary : 0;
  let ss = 0;
  for (let i = 0; i < n; i++) if (!outlier.has(i)) ss += (diffs[i] - omean) ** 2;
  const sd = ordinary > 1 ? Math.sqrt(ss / (ordinary - 1)) : Infinity;
  return { perIteration: mean, standardError: sd / Math.sqrt(Math.max(1, ordinary)), excluded, periodicSteps, diffs };
}

/** The probe's verdict rule: clear of noise (3 standard errors) and above a floor in bytes. */
export function isLeaking(e: SlopeEstimate, thresholdBytes: number): boolean {
  return e.perIteration >= thresholdBytes && e.perIteration > 3 * e.standardError;
}
