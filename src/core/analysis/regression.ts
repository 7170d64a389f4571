import { invertSym, median, nnlsNormal } from './linalg';

/** One coefficient of a retention fit: bytes (or objects) kept per request of one column. */
export interface Coefficient {
  /** Non-negative least-squares estimate: what we report. */
  estimate: number;
  /** Unconstrained (robust) least-squares estimate, used for the interval and the z-score. */
  unconstrained: number;
  /** Standard error of the unconstrained estimate. */
  se: number;
  /** 95% interval around the unconstrained estimate. */
  low: number;
  high: number;
  /** unconstrained / se; 0 when se is not finite; Infinity for an exact positive fit. */
  z: number;
}

export interface RetentionFit {
  coefficients: Coefficient[];
  /** Robust residual scale (1.4826 × MAD) in the units of y. */
  scale: number;
  /** Rows used with full weight, rows down-weighted, rows dropped as one-off jumps. */
  rows: number;
  downweighted: number;
  dropped: number;
  /** Final weight of each row (1 = full, 0 = dropped as an outlier). */
  weights: Float64Array;
  residuals: Float64Array;
}

export interface FitOptions {
  /** Residuals beyond this many robust scales are down-weighted (Huber). Default 3. */
  huber?: number;
  /** Residuals beyond this many robust scales are dropped as one-off jumps. Default 8. */
  trim?: number;
  /** Smallest residual scale: stops a perfectly fitting series from calling every wiggle an outlier. */
  minScale?: number;
  iterations?: number;
}

/**
 * Estimates how much of `y` each column of `x` keeps per unit: y ≈ X·b with b ≥ 0.
 *
 * In the detector a row is one interval between two checkpoints, `y` the change in live heap and
 * column j the number of requests route j served in that interval. Fitting increments instead of
 * levels makes the noise of each checkpoint count once, and a route is identified by how its share
 * of the traffic varies between intervals (with a perfectly fixed mix the columns are collinear and
 * the intervals come out wide, which is reported, not hidden).
 *
 * Robustness: iteratively re-weighted least squares with Huber weights on a MAD scale; residuals
 * beyond `trim` scales get weight 0 (a Map doubling its table, a JIT burst in one interval).
 *
 * @example
 * ```ts
 * // 3 intervals, 2 routes: route 0 keeps 1,000 B/request, route 1 nothing.
 * const x = Float64Array.of(10, 5, 20, 5, 5, 20);
 * const y = Float64Array.of(10_000, 20_000, 5_000);
 * fitRetention(x, y, 3, 2).coefficients[0].estimate; // ≈ 1000
 * ```
 */
export function fitRetention(x: Float64Array, y: Float64Array, n: number, p: number, options: FitOptions = {}): RetentionFit {
  const huber = options.huber ?? 3;
  const trim = options.trim ?? 8;
  const minScale = options.minScale ?? 1;
  const iterations = options.iterations ?? 5;
  const w = new Float64Array(n).fill(1);
  const r = new Float64Array(n);
  let g = new Float64Array(p * p);
  let c = new Float64Array(p);
  let inv: Float64Array | undefined;
  let b = new Float64Array(p);
  let scale = minScale;
  // Rows where no column moved (no request between two checkpoints) fit any coefficient exactly:
  // counted in the scale, a run of idle intervals pulls the median residual to zero, every busy
  // row then reads as an outlier, and what is left fits "exactly". Seen on bursty traffic: a route
  // charged with another route's new globals at z = 54 while their joint fit said z = 1.
  const busy = new Uint8Array(n);
  let active = 0;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < p; j++) if (x[i * p + j] !== 0) { busy[i] = 1; active++; break; }
  }

  const normal = (): void => {
    g = new Float64Array(p * p);
    c = new Float64Array(p);
    for (let i = 0; i < n; i++) {
      const wi = w[i];
      if (wi === 0) continue;
      const row = i * p;
      for (let j = 0; j < p; j++) {
        const xj = x[row + j] * wi;
        if (xj === 0) continue;
        c[j] += xj * y[i];
        for (let k = 0; k <= j; k++) g[j * p + k] += xj * x[row + k];
      }
    }
    for (let j = 0; j < p; j++) for (let k = 0; k < j; k++) g[k * p + j] = g[j * p + k];
  };
  const ridgeFor = (): number => {
    let maxDiag = 0;
    for (let j = 0; j < p; j++) maxDiag = Math.max(maxDiag, g[j * p + j]);
    return maxDiag * 1e-9 + 1e-9;
  };
  const solve = (): void => {
    inv = invertSym(g, p, ridgeFor());
    b = new Float64Array(p);
    if (inv === undefined) return;
    for (let j = 0; j < p; j++) {
      let s = 0;
      for (let k = 0; k < p; k++) s += inv[j * p + k] * c[k];
      b[j] = s;
    }
  };
  const residuals = (coef: Float64Array): void => {
    for (let i = 0; i < n; i++) {
      let s = y[i];
      const row = i * p;
      for (let j = 0; j < p; j++) s -= x[row + j] * coef[j];
      r[i] = s;
    }
  };

  for (let it = 0; it < iterations; it++) {
    normal();
    solve();
    residuals(b);
    const abs = new Float64Array(n);
    for (let i = 0; i < n; i++) abs[i] = Math.abs(r[i]);
    scale = Math.max(minScale, 1.4826 * median(active < n && active > p ? abs.filter((_, i) => busy[i] === 1) : abs));
    for (let i = 0; i < n; i++) {
      const u = abs[i] / scale;
      w[i] = u <= huber ? 1 : u <= trim ? huber / u : 0;
    }
  }
  normal();
  solve();
  residuals(b);
  let sw = 0;
  let swr2 = 0;
  let downweighted = 0;
  let dropped = 0;
  for (let i = 0; i < n; i++) {
    sw += w[i];
    swr2 += w[i] * r[i] * r[i];
    if (w[i] === 0) dropped++;
    else if (w[i] < 1) downweighted++;
  }
  const dof = sw - p;
  // Too few rows for the columns: no interval at all rather than a falsely narrow one.
  const sigma2 = dof >= 1 ? swr2 / dof : Infinity;
  const nn = nnlsNormal(g, c, p);
  const coefficients: Coefficient[] = [];
  for (let j = 0; j < p; j++) {
    const v = inv === undefined ? Infinity : sigma2 * inv[j * p + j];
    const se = Number.isFinite(v) && v >= 0 ? Math.sqrt(v) : Infinity;
    const est = b[j];
    coefficients.push({
      estimate: nn[j],
      unconstrained: est,
      se,
      low: est - 1.96 * se,
      high: est + 1.96 * se,
      z: !Number.isFinite(se) ? 0 : se > 0 ? est / se : est > 0 ? Infinity : 0,
    });
  }
  return { coefficients, scale, rows: n - downweighted - dropped, downweighted, dropped, weights: w, residuals: r };
}

/** A straight line fitted by least squares, with the slope's standard error. */
export interface Line {
  slope: number;
  intercept: number;
  se: number;
  n: number;
}

/**
 * Ordinary least-squares line through (xs, ys). Used for process-wide rates (bytes per second).
 *
 * @example
 * ```ts
 * fitLine([0, 1, 2, 3], [10, 12, 14, 16]).slope; // 2
 * ```
 */
export function fitLine(xs: ArrayLike<number>, ys: ArrayLike<number>): Line {
  const n = Math.min(xs.length, ys.length);
  if (n < 2) return { slope: 0, intercept: n === 1 ? ys[0] : 0, se: Infinity, n };
  let mx = 0;
  let my = 0;
  for (let i = 0; i < n; i++) { mx += xs[i]; my += ys[i]; }
  mx /= n; my /= n;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) { sxx += (xs[i] - mx) ** 2; sxy += (xs[i] - mx) * (ys[i] - my); }
  if (sxx === 0) return { slope: 0, intercept: my, se: Infinity, n };
  const slope = sxy / sxx;
  const intercept = my - slope * mx;
  let sse = 0;
  for (let i = 0; i < n; i++) sse += (ys[i] - intercept - slope * xs[i]) ** 2;
  const se = n > 2 ? Math.sqrt(sse / (n - 2) / sxx) : Infinity;
  return { slope, intercept, se, n };
}

/**
 * Theil–Sen slope: the median of pairwise slopes. One jump (a table doubling) cannot move it, so
 * it is the robust companion of `fitLine` for short process-wide series.
 *
 * @example
 * ```ts
 * theilSen([0, 1, 2, 3, 4], [0, 1, 2, 50, 4]); // 1
 * ```
 */
export function theilSen(xs: ArrayLike<number>, ys: ArrayLike<number>): number {
  const n = Math.min(xs.length, ys.length);
  const slopes: number[] = [];
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const dx = xs[j] - xs[i];
      if (dx !== 0) slopes.push((ys[j] - ys[i]) / dx);
    }
  }
  return slopes.length === 0 ? 0 : median(slopes);
}
