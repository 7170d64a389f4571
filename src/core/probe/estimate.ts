/**
 * Retained bytes per iteration from a series of live-heap readings, one after each forced full GC.
 *
 * Why not a plain slope: Array and Map backing stores grow by doubling, so a series can carry one
 * large step that is not a per-iteration cost (MEASURING.md §2), while a leak that happens only
 * every Nth iteration is made of nothing but steps. The rule here:
 * - take the per-iteration differences d[i];
 * - call a difference an outlier when it is far from their median (robust spread, MAD);
 * - outliers of alike size at every pth iteration (at least three times) are a periodic leak;
 *   any other outlier is a one-off (a backing store doubling, a lazy init, a cache eviction, a
 *   JIT bump) and is left out;
 * - a steady leak is the trimmed mean of the differences kept;
 * - a periodic leak is read over one period: each phase of the pattern (the step, and the
 *   neighbouring iterations that move with it, such as a give-back) as the median of that phase
 *   across periods, the other iterations of the period at the ordinary rate (the trimmed mean of
 *   the rest).
 * Why medians per phase and not the total growth over whole periods: the JIT leaves kilobyte bumps
 * that a total counts in full. On 61 recorded probes of the zoo's every-10th leak (10,256 B every
 * 10th request, truth 1,028 B/request), the whole-period rule read within 10% in 18 of 39 windows
 * of 30 iterations, 5 of 8 of 47 and 9 of 14 of 100 ("stable" 8 times); per-phase medians in
 * 31 of 39, 8 of 8 and 14 of 14 (never "stable"). A median needs several periods to outvote a bump, which is why
 * the runner measures at least MIN_PERIODS periods once it has seen a periodic leak (runner.ts).
 */
export interface SlopeEstimate {
  /** Bytes retained per iteration. */
  perIteration: number;
  /** Standard error of that mean, from the spread of the kept differences. */
  standardError: number;
  /** Indices (into the differences) left out as one-off jumps. */
  excluded: number[];
  /** Steps of the periodic pattern found (0: none). */
  periodicSteps: number;
  /** Period of that pattern in iterations (0: none). */
  period: number;
  /** Index (into the differences) of its first step. */
  phase: number;
  /** The per-iteration differences. */
  diffs: number[];
  /** The estimate on the first and on the second half of the window (both the whole one for a periodic leak). */
  halves: [number, number];
}

/** A periodic leak is read from at least this many periods (the runner measures that many). */
export const MIN_PERIODS = 5;

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * A copy of `diffs` where each adjacent pair of opposite jumps (both beyond `floor` from the
 * median) that cancel to within `ratio` of the larger is folded into one difference at the first.
 */
function foldPairs(diffs: readonly number[], med: number, floor: number, ratio: number): number[] {
  const d = [...diffs];
  for (let i = 0; i + 1 < d.length; i++) {
    const a = d[i] - med;
    const b = d[i + 1] - med;
    if (Math.abs(a) > floor && Math.abs(b) > floor && Math.sign(a) !== Math.sign(b) && Math.abs(a + b) < ratio * Math.max(Math.abs(a), Math.abs(b))) {
      d[i] = med + a + b;
      d[i + 1] = med;
      i++;
    }
  }
  return d;
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
  if (n === 0) return { perIteration: 0, standardError: Infinity, excluded: [], periodicSteps: 0, period: 0, phase: 0, diffs, halves: [0, 0] };
  const med = median(diffs);
  const mad = median(diffs.map((d) => Math.abs(d - med))) * 1.4826;
  const limit = Math.max(6 * mad, floor);
  // A transient that straddles one GC (allocated on iteration i, freed on i+1) shows as a jump and
  // its opposite right after: fold each such pair into one difference at i, so that two of them
  // are never read as periodic growth and periodic freeing (measured: +66 KB then -61 KB, three
  // times in one window, on a route that keeps nothing).
  const d = foldPairs(diffs, med, floor, 0.5);
  const up: number[] = [];
  const down: number[] = [];
  for (let i = 0; i < n; i++) {
    if (d[i] - med > limit) up.push(i);
    else if (med - d[i] > limit) down.push(i);
  }
  // Periodic steps are looked for with a lower bar than one-offs: on a route that leaks 10 KB every
  // 10th request, the JIT's kilobyte bumps between the steps widen the MAD until 6 MADs (18 KB)
  // topped the 15 KB steps themselves (measured: every-10th read 0 B/iteration, "stable"), and 3
  // MADs (11 KB) still missed a step that a transient had cut to 9.9 KB on a process's first probe.
  // And on the raw differences, not the folded ones: a step whose give-back was larger than usual
  // (+15,184 then -7,744) folds into half a step and broke the pattern (measured: 0 B/iteration).
  // The folded ones weigh the candidates (see `explains`): a transient straddling two GCs is no jump.
  // Only pairs that cancel to within a quarter are folded for that (a step and its give-back,
  // +15,376 then -5,120, are not a transient).
  const weighed = foldPairs(diffs, med, floor, 0.25);
  const stepLimit = Math.max(2 * mad, floor);
  let pattern: Candidate | undefined;
  for (const sign of [1, -1]) {
    const side: number[] = [];
    for (let i = 0; i < n; i++) if (sign * (diffs[i] - med) > stepLimit) side.push(i);
    const p = periodicSubset(side, diffs, weighed, med, n);
    if (p !== undefined && (pattern === undefined || p.hits.length > pattern.hits.length
      || (p.hits.length === pattern.hits.length && p.mass > pattern.mass))) pattern = p;
  }
  const inPattern = new Set<number>();
  let patternSum = 0;
  let patternPhases = 0;
  if (pattern !== undefined) {
    // The pattern's phases: the one found and its neighbours, before and after, while they move
    // the heap too: the step and the give-back that follows it (measured on the every-10th leak:
    // +15,376, then -5,120 on the next iteration, sometimes -4,224 and -896 over two: a dropped
    // Buffer whose external memory is released one GC late). The give-back alone can be what was
    // found (when a big transient hid the steps), so both directions are walked. Each phase is
    // read as the median of its iterations across periods, so that a JIT bump landing on one
    // period's step or give-back does not move it (a mean over whole periods read +41% to +61%).
    const { p, r } = pattern;
    const phaseMedian = (k: number): number => {
      const at: number[] = [];
      for (let i = ((r + k) % p + p) % p; i < n; i += p) at.push(diffs[i]);
      return median(at);
    };
    const moves = (m: number): boolean => Math.abs(m - med) > floor;
    let lo = 0;
    while (lo > -(p - 1) && moves(phaseMedian(lo - 1))) lo--;
    let hi = 0;
    while (hi - lo < p - 1 && moves(phaseMedian(hi + 1))) hi++;
    for (let k = lo; k <= hi; k++) {
      for (let i = ((r + k) % p + p) % p; i < n; i += p) inPattern.add(i);
      patternSum += phaseMedian(k);
      patternPhases++;
    }
  }
  const excluded: number[] = [];
  for (const i of [...up, ...down]) if (!inPattern.has(i)) excluded.push(i);
  excluded.sort((a, b) => a - b);
  const periodicSteps = pattern?.hits.length ?? 0;
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
    // One period: the pattern's phases as measured, the other iterations at the ordinary rate.
    // The same JIT bumps are left out of it as out of a steady leak's estimate.
    const rest = pattern.p - patternPhases;
    mean = (patternSum + (rest > 0 ? rest * t.mean : 0)) / pattern.p;
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
  return { perIteration: mean, standardError: se, excluded, periodicSteps, period: pattern?.p ?? 0, phase: pattern?.r ?? 0, diffs, halves };
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
 * The outliers of one side that form a pattern: the iterations r, r+p, r+2p, ... of the window are
 * outliers of alike size (within a factor of two of their median), at least three times (twice
 * happens by chance among JIT jumps). A leak every Nth iteration of an identical replay is exactly
 * that. With five or more such iterations in the window, one in five may miss: a JIT bump next
 * to a step can make it read small (measured: +12,088 then +6,328 where +15,376 was due, one
 * step of ten in a 100-iteration window), and requiring every one made the whole pattern vanish.
 * JIT warm-up also makes several outliers, but of scattered sizes (measured on the zoo: 3.4 to
 * 10.5 KB in one window) at irregular places (measured: iterations 5, 18 and 22).
 */
interface Pattern { hits: number[]; found: number[]; p: number; r: number }
interface Candidate extends Pattern { mass: number }

/**
 * @param raw the differences the steps are found in
 * @param folded the same with transients that straddle two GCs folded, for weighing
 */
function periodicSubset(side: readonly number[], raw: readonly number[], folded: readonly number[], med: number, n: number): Candidate | undefined {
  const set = new Set(side);
  const candidates: Candidate[] = [];
  for (let p = 2; p <= n >> 1; p++) {
    for (let r = 0; r < p; r++) {
      const slots = Math.ceil((n - r) / p);
      if (slots < 3) continue;
      const misses = Math.floor(slots / 5);
      const found: number[] = [];
      for (let i = r; i < n; i += p) if (set.has(i)) found.push(i);
      if (found.length < 3 || found.length < slots - misses) continue;
      const size = median(found.map((i) => Math.abs(raw[i] - med)));
      const hits = found.filter((i) => { const a = Math.abs(raw[i] - med); return a >= size / 2 && a <= size * 2; });
      if (hits.length < 3 || hits.length < slots - misses) continue;
      let mass = 0;
      for (const i of hits) mass += Math.abs(folded[i] - med);
      candidates.push({ hits, found, p, r, mass });
    }
  }
  // The most steps first, then the heaviest: three JIT bumps 8 apart must not shadow three 10 KB
  // steps 10 apart (measured: the bumps were tried first, failed the check below, and the leak
  // read 0 B/iteration).
  candidates.sort((a, b) => b.hits.length - a.hits.length || b.mass - a.mass);
  for (const c of candidates) if (explains(c, side, raw, folded, med)) return c;
  return undefined;
}

/**
 * Among many candidate periods, three of a steady leak's JIT bumps line up by chance (measured:
 * bumps of 0.7 to 4 KB at periods 11 to 43, moving array-push and listener estimates by 7 to 8%).
 * Such a pattern explains few of the window's jumps: it carried 12% to 49% of the outlier mass of
 * its side, with one to eleven other outliers of its size off its beat. A real periodic leak's
 * steps carried 58% or more in 81 recorded every-10th probes. So the pattern must carry half the
 * mass, or else be the only outliers of its size. Masses are read with straddling transients
 * folded: a +138,592 then -123,136 pair next to 10 KB steps would otherwise outweigh them all.
 */
function explains(c: Pattern, side: readonly number[], raw: readonly number[], folded: readonly number[], med: number): boolean {
  const found = new Set(c.found);
  const size = median(c.hits.map((i) => Math.abs(raw[i] - med)));
  let inPattern = 0;
  let all = 0;
  let others = 0;
  for (const i of side) {
    const a = Math.abs(folded[i] - med);
    all += a;
    if (found.has(i)) inPattern += a;
    else if (a >= size / 2 && a <= size * 2) others++;
  }
  return inPattern >= 0.5 * all || others === 0;
}

/**
 * The probe's verdict rule: above a floor in bytes, clear of noise (3 standard errors), and
 * growing in both halves of the window (at half the floor).
 */
export function isLeaking(e: SlopeEstimate, thresholdBytes: number): boolean {
  return e.perIteration >= thresholdBytes && e.perIteration > 3 * e.standardError
    && e.halves[0] >= thresholdBytes / 2 && e.halves[1] >= thresholdBytes / 2;
}

/**
 * A period worth measuring more of: like the pattern `estimateSlope` looks for, but one step in the
 * window may read small, as long as it still moves the same way by more than `floor`. With three
 * periods in a window no step may miss, and on the second probe of a process a step once came
 * spread over four iterations (+4,344 +3,480 +5,152 +4,160 where +10,256 was due): the leak read
 * 0 B/iteration, "stable". The runner measures five whole periods when this finds one, and the
 * estimate is made on those.
 * @returns the period in iterations, or 0.
 * @example
 * periodHint([0, 10256, 10256, 10256, 10256, 10256, 10256, 10256, 10256, 10256, 10256, 14416, 14416, 14416,
 *   14416, 14416, 14416, 14416, 14416, 14416, 14416, 24672, 24672]); // 10
 */
export function periodHint(series: readonly number[], floor = 512): number {
  const diffs: number[] = [];
  for (let i = 1; i < series.length; i++) diffs.push(series[i] - series[i - 1]);
  const n = diffs.length;
  const med = median(diffs);
  const mad = median(diffs.map((d) => Math.abs(d - med))) * 1.4826;
  const stepLimit = Math.max(2 * mad, floor);
  for (let p = 2; p <= n >> 1; p++) {
    for (let r = 0; r < p; r++) {
      const slots = Math.ceil((n - r) / p);
      if (slots < 3) continue;
      for (const sign of [1, -1]) {
        const moves: number[] = [];
        for (let i = r; i < n; i += p) moves.push(sign * (diffs[i] - med));
        if (Math.min(...moves) <= floor) continue;
        // All but the smallest must be steps of alike size.
        const top = moves.sort((a, b) => b - a).slice(0, slots - 1);
        if (top[top.length - 1] > stepLimit && top[0] <= 2 * top[top.length - 1]) return p;
      }
    }
  }
  return 0;
}
