/**
 * Retained bytes per iteration from a series of live-heap readings, one after each forced full GC.
 *
 * Why not a plain slope: Array and Map backing stores grow by doubling, so a series can carry one
 * large step that is not a per-iteration cost (MEASURING.md §2), while a leak that happens only
 * every Nth iteration is made of nothing but steps. The rule here:
 * - take the per-iteration differences d[i];
 * - call a difference an outlier when it is far from their median (robust spread, MAD);
 * - a lone outlier in one direction is a one-off (a backing store doubling, a lazy init, a cache
 *   eviction) and is left out; two or more alike in size in the same direction are a pattern (a
 *   leak every Nth iteration) and stay in; several of scattered sizes or spacing are JIT warm-up
 *   and go;
 * - the estimate is the mean of the differences kept, which is the total growth over the window
 *   when nothing was left out (the most precise figure for a steady leak: noise only at the ends).
 * A leak every Nth iteration therefore needs at least 3N measured iterations to be told from
 * JIT noise; the default 30 covers every 10th.
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
  /** The estimate on the first and on the second half of the window (both the whole one for a periodic leak). */
  halves: [number, number];
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
  if (n === 0) return { perIteration: 0, standardError: Infinity, excluded: [], periodicSteps: 0, diffs, halves: [0, 0] };
  const med = median(diffs);
  const mad = median(diffs.map((d) => Math.abs(d - med))) * 1.4826;
  const limit = Math.max(6 * mad, floor);
  // A transient that straddles one GC (allocated on iteration i, freed on i+1) shows as a jump and
  // its opposite right after: fold each such pair into one difference at i, so that two of them
  // are never read as periodic growth and periodic freeing (measured: +66 KB then -61 KB, three
  // times in one window, on a route that keeps nothing).
  const d = [...diffs];
  for (let i = 0; i + 1 < n; i++) {
    const a = d[i] - med;
    const b = d[i + 1] - med;
    if (Math.abs(a) > floor && Math.abs(b) > floor && Math.sign(a) !== Math.sign(b) && Math.abs(a + b) < 0.5 * Math.max(Math.abs(a), Math.abs(b))) {
      d[i] = med + a + b;
      d[i + 1] = med;
      i++;
    }
  }
  const up: number[] = [];
  const down: number[] = [];
  for (let i = 0; i < n; i++) {
    if (d[i] - med > limit) up.push(i);
    else if (med - d[i] > limit) down.push(i);
  }
  const excluded: number[] = [];
  let periodicSteps = 0;
  let pattern: Pattern | undefined;
  for (const side of [up, down]) {
    const p = periodicSubset(side, d, med, n);
    if (p !== undefined && (pattern === undefined || p.hits.length > pattern.hits.length)) pattern = p;
  }
  const inPattern = new Set(pattern?.hits ?? []);
  for (const i of [...up, ...down]) {
    if (inPattern.has(i)) periodicSteps++; else excluded.push(i);
  }
  excluded.sort((a, b) => a - b);
  const outlier = new Set(excluded);
  const ordinary: number[] = [];
  for (let i = 0; i < n; i++) if (!outlier.has(i) && !inPattern.has(i)) ordinary.push(d[i]);
  // Ordinary differences: a 40% trimmed mean (the mean of the middle fifth). V8 leaves small
  // bumps of a few hundred bytes to a few KB under the outlier limit, mostly upwards (feedback,
  // inline caches; more of them on a big heap). Measured on a 54 MB heap, 1,296 B/iteration
  // leak: the plain mean read 1,523, a 20% trimmed mean 1,540, 40% 1,351, the median 1,312.
  // A steady leak gives the same difference every time, so heavy trimming costs it nothing.
  const t = trimmedMean(ordinary, 0.4);
  let mean = t.mean;
  if (pattern !== undefined) {
    // A periodic step comes with give-backs on the next iterations (measured on the every-10th
    // leak: +15,376, then -4,208 and -912, which nets the 10,256 B kept). So the estimate is the
    // growth over whole periods only, from the first step: each period holds one step and all of
    // its give-back (outliers of the other sign stay in). Other outliers of the pattern's sign
    // are one-offs and count as an ordinary iteration.
    const { p, r } = pattern;
    const sign = Math.sign(d[r] - med);
    const k = Math.floor((n - r) / p);
    let sum = 0;
    for (let i = r; i < r + k * p; i++) sum += outlier.has(i) && Math.sign(d[i] - med) === sign ? t.mean : d[i];
    mean = sum / (k * p);
  }
  // Noise is judged on the ordinary differences only: recurring steps are the signal of a
  // periodic leak, and counting them as spread would hide exactly that leak.
  // Its standard error: the larger of the trimmed mean's (winsorized spread) and the median's
  // (1.2533 × σ/√n, σ from the MAD). Heavy trimming makes the winsorized spread collapse on
  // data that moves in coarse steps (rows of a table added and dropped at random): alone it
  // read ±21 B on the zoo's grow-shrink control, whose estimate then wanders by ±300 B.
  const omed = median(ordinary);
  const omad = median(ordinary.map((x) => Math.abs(x - omed))) * 1.4826;
  const seMedian = 1.2533 * omad / Math.sqrt(Math.max(1, ordinary.length));
  const se = ordinary.length > 1 ? Math.max(t.standardError, seMedian) : Infinity;
  // The same estimate on each half of the window: a leak keeps growing in both, data that
  // wanders at random rarely does (see isLeaking).
  let halves: [number, number] = [mean, mean];
  if (pattern === undefined && ordinary.length >= 8) {
    const firstHalf: number[] = [];
    const secondHalf: number[] = [];
    for (let i = 0; i < n; i++) {
      if (outlier.has(i)) continue;
      (i < n / 2 ? firstHalf : secondHalf).push(d[i]);
    }
    halves = [trimmedMean(firstHalf, 0.4).mean, trimmedMean(secondHalf, 0.4).mean];
  }
  return { perIteration: mean, standardError: se, excluded, periodicSteps, diffs, halves };
}

/** Trimmed mean and its standard error (Tukey–McLaughlin: winsorized spread). */
export function trimmedMean(xs: readonly number[], gamma: number): { mean: number; standardError: number } {
  const n = xs.length;
  if (n === 0) return { mean: 0, standardError: Infinity };
  const s = [...xs].sort((a, b) => a - b);
  const g = Math.floor(gamma * n);
  let sum = 0;
  for (let i = g; i < n - g; i++) sum += s[i];
  const mean = sum / (n - 2 * g);
  const lo = s[g];
  const hi = s[n - 1 - g];
  let wsum = 0;
  for (const x of s) wsum += Math.min(hi, Math.max(lo, x));
  const wmean = wsum / n;
  let ss = 0;
  for (const x of s) ss += (Math.min(hi, Math.max(lo, x)) - wmean) ** 2;
  const wsd = n > 1 ? Math.sqrt(ss / (n - 1)) : Infinity;
  return { mean, standardError: wsd / ((1 - 2 * g / n) * Math.sqrt(n)) };
}

/**
 * The outliers of one side that form a pattern: every iteration r, r+p, r+2p, ... of the window
 * is an outlier, at least three times (twice happens by chance among JIT jumps), and they are
 * alike in size. A leak every Nth iteration of an
 * identical replay is exactly that. JIT warm-up (baseline code, feedback vectors, optimised code
 * allocated on some iteration, sometimes freed on a later one) also makes several outliers, but
 * of scattered sizes (measured on the zoo: 3.4 to 10.5 KB in one window) at irregular places
 * (measured: iterations 5, 18 and 22); those that do not fit the pattern are left out.
 */
interface Pattern { hits: number[]; p: number; r: number }

function periodicSubset(side: readonly number[], diffs: readonly number[], med: number, n: number): Pattern | undefined {
  const set = new Set(side);
  let best: Pattern | undefined;
  for (let p = 2; p <= n >> 1; p++) {
    for (let r = 0; r < p; r++) {
      const hits: number[] = [];
      let all = true;
      for (let i = r; i < n; i += p) {
        if (!set.has(i)) { all = false; break; }
        hits.push(i);
      }
      if (!all || hits.length < 3 || (best !== undefined && hits.length <= best.hits.length)) continue;
      let lo = Infinity;
      let hi = 0;
      for (const i of hits) {
        const a = Math.abs(diffs[i] - med);
        if (a < lo) lo = a;
        if (a > hi) hi = a;
      }
      if (hi <= 2 * lo) best = { hits, p, r };
    }
  }
  return best;
}

/**
 * The probe's verdict rule: above a floor in bytes, clear of noise (3 standard errors), and
 * growing in both halves of the window (at half the floor).
 */
export function isLeaking(e: SlopeEstimate, thresholdBytes: number): boolean {
  return e.perIteration >= thresholdBytes && e.perIteration > 3 * e.standardError
    && e.halves[0] >= thresholdBytes / 2 && e.halves[1] >= thresholdBytes / 2;
}
