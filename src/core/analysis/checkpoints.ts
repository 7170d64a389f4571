import { fitRetention, type Coefficient, type RetentionFit } from './regression';
import type { Signal } from './verdict';
import { decideVerdict, DEFAULT_RULES, type RouteEvidence, type VerdictResult, type VerdictRules } from './verdict';
import { sampledSignal } from './sampled';

/** A window of checkpoints, oldest first: levels measured right after a full GC. */
export interface CheckpointWindow {
  /** Live JS heap (code spaces excluded) at each checkpoint. */
  heap: ArrayLike<number>;
  /** External + ArrayBuffer bytes at each checkpoint. */
  external?: ArrayLike<number>;
  /** Requests held at the gate at each checkpoint: they are alive, so they are a nuisance column. */
  held?: ArrayLike<number>;
  /** Cumulative request count of each route at each checkpoint: `counts[route][checkpoint]`. */
  counts: Array<ArrayLike<number>>;
  /** Object counts at each checkpoint (new globals, active Timeouts, …), by name. */
  objects?: Record<string, ArrayLike<number>>;
  /**
   * Live bytes the sampling heap profiler charged to each route at each checkpoint:
   * `sampled[route][checkpoint]`, NaN where the route had no trampoline yet.
   */
  sampled?: Array<ArrayLike<number>>;
  /** The profiler's sampling interval in bytes (needed with `sampled`). */
  samplingInterval?: number;
  /** The profiler run of each checkpoint's reading (see SampledOptions.runs); default one run. */
  sampledRuns?: ArrayLike<number>;
}

export interface RouteAnalysis {
  /** False when the route had too few requests in the window to get a column of its own. */
  modeled: boolean;
  windowRequests: number;
  heap?: Coefficient;
  external?: Coefficient;
  evidence: RouteEvidence;
  verdict: VerdictResult;
}

export interface WindowAnalysis {
  routes: RouteAnalysis[];
  checkpoints: number;
  /** Robust scale of the heap residuals between checkpoints, in bytes. */
  heapScale: number;
  /** Intervals dropped as one-off jumps. */
  dropped: number;
}

export interface AnalysisOptions {
  rules?: VerdictRules;
  /** Routes with fewer requests in the window share one "other" column. Default 3. */
  minRouteRequests?: number;
  /** At most this many route columns (the busiest). Default 40. */
  maxColumns?: number;
  /** Smallest heap residual scale in bytes (one-off outlier detection). Default 2,048. */
  minHeapScale?: number;
  /**
   * `levels`: each checkpoint against the window's first, with an intercept: the noise of
   * a post-GC reading is independent from one checkpoint to the next, and levels use it best.
   * `differences` (default): each interval on its own. Levels should use independent reading noise best, but on simulated zoo traffic they came out biased by ±50% where differences were within ±15%, and differences turn a step (lazy init, a table doubling) into one outlier that robust weighting drops.
   */
  model?: 'levels' | 'differences';
  /** Rows beyond the number of columns needed before any route is judged. Default 10. */
  minDof?: number;
}

interface Design {
  x: Float64Array;
  n: number;
  p: number;
  /** Column of each route, or -1. */
  columnOf: Int32Array;
}

function design(w: CheckpointWindow, from: number, to: number, routes: number[], hasHeld: boolean, routeCount: number, levels: boolean): Design {
  const columnOf = new Int32Array(routeCount).fill(-1);
  routes.forEach((r, j) => { columnOf[r] = j; });
  const other = routes.length;
  const held = other + 1;
  const p = routes.length + 1 + (hasHeld ? 1 : 0) + (levels ? 1 : 0);
  // Levels: row i is checkpoint from+i against the window's first checkpoint, plus an intercept.
  // Differences: row i is the interval between checkpoints from+i and from+i+1.
  const n = levels ? to - from + 1 : to - from;
  const x = new Float64Array(n * p);
  for (let i = 0; i < n; i++) {
    const a = levels ? from : from + i;
    const b = levels ? from + i : from + i + 1;
    for (let r = 0; r < routeCount; r++) {
      const d = w.counts[r][b] - w.counts[r][a];
      if (d === 0) continue;
      const col = columnOf[r] >= 0 ? columnOf[r] : other;
      x[i * p + col] += d;
    }
    if (hasHeld) x[i * p + held] = levels ? w.held![b] : w.held![b] - w.held![a];
    if (levels) x[i * p + p - 1] = 1;
  }
  return { x, n, p, columnOf };
}

function responses(series: ArrayLike<number>, from: number, to: number, levels: boolean): Float64Array {
  if (levels) {
    const y = new Float64Array(to - from + 1);
    for (let i = from; i <= to; i++) y[i - from] = series[i] - series[from];
    return y;
  }
  const y = new Float64Array(to - from);
  for (let i = from; i < to; i++) y[i - from] = series[i + 1] - series[i];
  return y;
}

/**
 * "Is route j still growing lately?": over rows from `fromRow` on, subtract what the whole-window
 * fit says every other column kept, and fit route j's column alone. One unknown, so a short recent
 * stretch still answers, and the other routes' leaks do not blur the answer.
 */
function recentOf(d: Design, y: Float64Array, whole: RetentionFit, j: number, fromRow: number, minScale: number): Coefficient | undefined {
  const n = d.n - fromRow;
  if (n < 3) return undefined;
  const x1 = new Float64Array(n);
  const y1 = new Float64Array(n);
  let any = false;
  for (let i = 0; i < n; i++) {
    const row = (fromRow + i) * d.p;
    let v = y[fromRow + i];
    for (let k = 0; k < d.p; k++) if (k !== j) v -= d.x[row + k] * whole.coefficients[k].estimate;
    y1[i] = v;
    x1[i] = d.x[row + j];
    if (x1[i] !== 0) any = true;
  }
  if (!any) return undefined;
  return fitRetention(x1, y1, n, 1, { minScale }).coefficients[0];
}

/** The chosen routes' columns alone: routes not chosen are taken to keep nothing of this series. */
function jointFit(w: CheckpointWindow, y: Float64Array, chosen: number[], L: number, minScale: number): { d: Design; fit: RetentionFit } {
  const full = design(w, 0, L - 1, chosen, false, w.counts.length, false);
  const p = chosen.length;
  const x = new Float64Array(full.n * p);
  for (let i = 0; i < full.n; i++) for (let j = 0; j < p; j++) x[i * p + j] = full.x[i * full.p + j];
  const d: Design = { x, n: full.n, p, columnOf: full.columnOf };
  return { d, fit: fitRetention(x, y, d.n, p, { minScale }) };
}

/**
 * Forward selection for a series that only a few routes move (new globals, Buffers kept): with
 * many routes the full regression needs more checkpoints than there are yet (a column each plus
 * spare rows), while one leaking route explains such a series alone. Adds, one at a time, the
 * route whose requests best explain what is left (largest z), while that z reaches `z`, up to
 * `maxCols` routes. Returns each chosen route's signal (whole window and recent half).
 */
function sparseSignals(w: CheckpointWindow, series: ArrayLike<number>, candidates: number[], minScale: number, z: number, maxCols: number): Map<number, Signal> {
  const out = new Map<number, Signal>();
  const L = series.length;
  const chosen: number[] = [];
  const y = responses(series, 0, L - 1, false);
  let residual = y;
  let last: { d: Design; fit: RetentionFit } | undefined;
  while (chosen.length < maxCols) {
    let best = -1;
    let bestZ = z;
    for (const r of candidates) {
      if (chosen.includes(r)) continue;
      const c = jointFit(w, residual, [r], L, minScale).fit.coefficients[0];
      if (c.z >= bestZ && c.unconstrained > 0) { bestZ = c.z; best = r; }
    }
    if (best < 0) break;
    chosen.push(best);
    last = jointFit(w, y, chosen, L, minScale);
    const { d, fit } = last;
    residual = new Float64Array(y.length);
    for (let i = 0; i < d.n; i++) {
      let v = y[i];
      for (let j = 0; j < d.p; j++) v -= d.x[i * d.p + j] * fit.coefficients[j].unconstrained;
      residual[i] = v;
    }
  }
  // Backward: a route taken early can stop explaining anything once a later one is in (traffic
  // that rises and falls for every route at once makes any busy route look like the cause alone).
  // Drop the weakest while its z in the joint fit falls short, and refit.
  while (last !== undefined) {
    let weakest = -1;
    for (let j = 0; j < chosen.length; j++) {
      const c = last.fit.coefficients[j];
      if ((c.z < z || c.unconstrained <= 0) && (weakest < 0 || c.z < last.fit.coefficients[weakest].z)) weakest = j;
    }
    if (weakest < 0) break;
    chosen.splice(weakest, 1);
    last = chosen.length === 0 ? undefined : jointFit(w, y, chosen, L, minScale);
  }
  // And robust: a pick must stay significant beside any one other candidate. When the mix barely
  // varies, whichever busy route is tried first explains the series alone (z = 17 in a seeded
  // case whose joint fit gave each of the two routes z = 3); better to say nothing yet.
  if (last !== undefined) {
    // One fit per other candidate serves every pick (the picks are its first columns).
    const weak = new Set<number>();
    for (const c of candidates) {
      if (chosen.includes(c)) continue;
      const coefs = jointFit(w, y, [...chosen, c], L, minScale).fit.coefficients;
      chosen.forEach((r, j) => { if (!(coefs[j].z >= z && coefs[j].unconstrained > 0)) weak.add(r); });
    }
    const keep = chosen.filter((r) => !weak.has(r));
    if (keep.length !== chosen.length) {
      chosen.splice(0, chosen.length, ...keep);
      last = chosen.length === 0 ? undefined : jointFit(w, y, chosen, L, minScale);
    }
  }
  if (last === undefined) return out;
  const mid = Math.floor((L - 1) / 2);
  chosen.forEach((r, j) => {
    out.set(r, { all: last!.fit.coefficients[j], recent: recentOf(last!.d, y, last!.fit, j, mid, minScale) });
  });
  return out;
}

/**
 * The detector's whole analysis of one window of checkpoints, as a pure function: regress the
 * change in live heap (and external memory, and object counts) between checkpoints on the
 * requests each route served in between; test the recent half again to tell sustained growth from
 * growth that is flattening out; then decide each route's verdict.
 *
 * @example
 * ```ts
 * // Route 0 keeps 2 KB per request; route 1 nothing; the mix changes between checkpoints.
 * const counts = [[0, 10, 15, 40, 42, 60, 61, 90, 95, 120], [0, 30, 70, 75, 110, 115, 150, 152, 190, 195]];
 * const heap = counts[0].map((n) => 5e6 + 2000 * n);
 * analyzeWindow({ heap, counts }).routes[0].heap?.estimate; // ≈ 2000
 * ```
 */
export function analyzeWindow(w: CheckpointWindow, options: AnalysisOptions = {}): WindowAnalysis {
  const rules = options.rules ?? DEFAULT_RULES;
  const minRouteRequests = options.minRouteRequests ?? 3;
  const maxColumns = options.maxColumns ?? 40;
  const minHeapScale = options.minHeapScale ?? 2048;
  const minDof = options.minDof ?? 10;
  const levels = (options.model ?? 'differences') === 'levels';
  const L = w.heap.length;
  const routeCount = w.counts.length;
  const windowRequests = w.counts.map((c) => (L > 0 ? c[L - 1] - c[0] : 0));
  const interval = w.samplingInterval ?? 0;
  const sampledOf = (r: number): RouteEvidence['sampled'] =>
    (w.sampled?.[r] !== undefined && interval > 0 ? sampledSignal(w.sampled[r], w.counts[r], { interval, runs: w.sampledRuns }) : undefined);
  // Exact object counts and external memory through the few routes that explain them
  // (sparseSignals): before the full regression can run, so that new globals and kept Buffers are
  // not kept waiting for a column per route, and beside it (below).
  const sparse = (): { ext: Map<number, Signal>; objects: Array<{ name: string; m: Map<number, Signal> }> } => {
    const cands = windowRequests.map((n, r) => ({ n, r })).filter((e) => e.n >= minRouteRequests).map((e) => e.r);
    const maxCols = Math.max(0, Math.min(3, L - 1 - minDof));
    const none = { ext: new Map<number, Signal>(), objects: [] as Array<{ name: string; m: Map<number, Signal> }> };
    if (L < rules.minCheckpoints || maxCols === 0 || cands.length === 0) return none;
    const ext = w.external !== undefined ? sparseSignals(w, w.external, cands, 256, rules.z, maxCols) : none.ext;
    const objects: Array<{ name: string; m: Map<number, Signal> }> = [];
    for (const [name, series] of Object.entries(w.objects ?? {})) {
      if (series.length !== L || series[L - 1] === series[0]) continue;
      objects.push({ name, m: sparseSignals(w, series, cands, 0.5, rules.zObjects, maxCols) });
    }
    return { ext, objects };
  };
  const empty = (needCheckpoints: number): WindowAnalysis => {
    const sp = sparse();
    return {
    checkpoints: L, heapScale: 0, dropped: 0,
    routes: windowRequests.map((n, r) => {
      const sampled = sampledOf(r);
      const external = sp.ext.get(r);
      const objects = sp.objects.filter((o) => o.m.has(r)).map((o) => ({ name: o.name, ...o.m.get(r)! }));
      const evidence: RouteEvidence = { windowRequests: n, checkpoints: L, sampled, external, objects };
      // The profiler's figures need no regression: only the regression's own rows requirement waits.
      const need = sampled !== undefined || external !== undefined || objects.length > 0 ? rules : { ...rules, minCheckpoints: Math.max(rules.minCheckpoints, needCheckpoints) };
      return { modeled: false, windowRequests: n, external: external?.all, evidence, verdict: decideVerdict(evidence, need) };
    }),
    };
  };
  if (L < 3) return empty(3);

  const modeled = windowRequests
    .map((n, r) => ({ n, r }))
    .filter((e) => e.n >= minRouteRequests)
    .sort((a, b) => b.n - a.n)
    .slice(0, maxColumns)
    .map((e) => e.r)
    .sort((a, b) => a - b);
  let hasHeld = false;
  if (w.held !== undefined) for (let i = 1; i < L; i++) if (w.held[i] !== w.held[i - 1]) { hasHeld = true; break; }

  const mid = Math.floor((L - 1) / 2);
  const full = design(w, 0, L - 1, modeled, hasHeld, routeCount, levels);
  const recentFrom = mid; // first row of the recent half
  // The window needs clearly more rows than columns: with only a few spare rows the fit is nearly
  // exact, the residual scale collapses and every wiggle looks significant (seen on the zoo).
  if (full.n < full.p + minDof) return empty(full.p + minDof + (levels ? 0 : 1));

  const fit = (d: Design, series: ArrayLike<number>, from: number, minScale: number, lv = levels): RetentionFit =>
    fitRetention(d.x, responses(series, from, L - 1, lv), d.n, d.p, { minScale });
  const yHeap = responses(w.heap, 0, L - 1, levels);
  const heapAll = fit(full, w.heap, 0, minHeapScale);
  const yExt = w.external !== undefined ? responses(w.external, 0, L - 1, levels) : undefined;
  const extAll = w.external !== undefined ? fit(full, w.external, 0, 256) : undefined;

  // Swing: do this route's requests add variance (memory moving both ways) to the heap residuals?
  const objectFits: Array<{ name: string; y: Float64Array; all: RetentionFit }> = [];
  for (const [name, series] of Object.entries(w.objects ?? {})) {
    if (series.length !== L || series[L - 1] === series[0]) continue;
    objectFits.push({ name, y: responses(series, 0, L - 1, levels), all: fit(full, series, 0, 0.5) });
  }

  // The sparse fits too: with a column per route, a window of a few dozen checkpoints leaves the
  // exact series (Buffers kept, new globals) to a noisy many-column fit (on the zoo, seed 1, the
  // Buffer leak read 1.7 KB of its 4.1 KB and stable), while the one route that drives them
  // explains them alone. A route they pick takes the sparse figure.
  const sp = sparse();

  const routes: RouteAnalysis[] = [];
  for (let r = 0; r < routeCount; r++) {
    const j = full.columnOf[r];
    const n = windowRequests[r];
    if (j < 0) {
      const evidence: RouteEvidence = { windowRequests: n, checkpoints: L, sampled: sampledOf(r) };
      routes.push({ modeled: false, windowRequests: n, evidence, verdict: decideVerdict(evidence, rules) });
      continue;
    }
    const evidence: RouteEvidence = {
      windowRequests: n,
      checkpoints: L,
      heap: { all: heapAll.coefficients[j], recent: recentOf(full, yHeap, heapAll, j, recentFrom, minHeapScale) },
      external: sp.ext.get(r) ?? (extAll && yExt ? { all: extAll.coefficients[j], recent: recentOf(full, yExt, extAll, j, recentFrom, 256) } : undefined),
      objects: objectFits.map((o) => {
        const picked = sp.objects.find((x) => x.name === o.name)?.m.get(r);
        return picked !== undefined ? { name: o.name, ...picked } : { name: o.name, all: o.all.coefficients[j], recent: recentOf(full, o.y, o.all, j, recentFrom, 0.5) };
      }),
      sampled: sampledOf(r),
    };
    routes.push({
      modeled: true,
      windowRequests: n,
      heap: heapAll.coefficients[j],
      external: evidence.external?.all,
      evidence,
      verdict: decideVerdict(evidence, rules),
    });
  }
  return { routes, checkpoints: L, heapScale: heapAll.scale, dropped: heapAll.dropped };
}
