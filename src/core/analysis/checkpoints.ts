import { fitRetention, type Coefficient, type RetentionFit } from './regression';
import { decideVerdict, DEFAULT_RULES, type RouteEvidence, type VerdictResult, type VerdictRules } from './verdict';

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
}

interface Design {
  x: Float64Array;
  n: number;
  p: number;
  /** Column of each route, or -1. */
  columnOf: Int32Array;
}

function design(w: CheckpointWindow, from: number, to: number, routes: number[], hasHeld: boolean, routeCount: number): Design {
  const columnOf = new Int32Array(routeCount).fill(-1);
  routes.forEach((r, j) => { columnOf[r] = j; });
  const other = routes.length;
  const held = other + 1;
  const p = routes.length + 1 + (hasHeld ? 1 : 0);
  const n = to - from;
  const x = new Float64Array(n * p);
  for (let i = 0; i < n; i++) {
    const a = from + i;
    for (let r = 0; r < routeCount; r++) {
      const d = w.counts[r][a + 1] - w.counts[r][a];
      if (d === 0) continue;
      const col = columnOf[r] >= 0 ? columnOf[r] : other;
      x[i * p + col] += d;
    }
    if (hasHeld) x[i * p + held] = w.held![a + 1] - w.held![a];
  }
  return { x, n, p, columnOf };
}

function diffs(series: ArrayLike<number>, from: number, to: number): Float64Array {
  const y = new Float64Array(to - from);
  for (let i = from; i < to; i++) y[i - from] = series[i + 1] - series[i];
  return y;
}

/**
 * The detector's whole analysis of one window of checkpoints, as a pure function: regress the
 * change in live heap (and external memory, and object counts) between checkpoints on the
 * requests each route served in between; fit the recent half again to tell sustained growth from
 * growth that is flattening out; test whether a route's requests make memory swing both ways;
 * then decide each route's verdict.
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
  const L = w.heap.length;
  const routeCount = w.counts.length;
  const windowRequests = w.counts.map((c) => (L > 0 ? c[L - 1] - c[0] : 0));
  const empty = (): WindowAnalysis => ({
    checkpoints: L, heapScale: 0, dropped: 0,
    routes: windowRequests.map((n) => {
      const evidence: RouteEvidence = { windowRequests: n, checkpoints: L };
      return { modeled: false, windowRequests: n, evidence, verdict: decideVerdict(evidence, rules) };
    }),
  });
  if (L < 3) return empty();

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
  const full = design(w, 0, L - 1, modeled, hasHeld, routeCount);
  const recent = design(w, mid, L - 1, modeled, hasHeld, routeCount);
  // The window must have more intervals than columns, or nothing is identified.
  if (full.n <= full.p) return empty();

  const fit = (d: Design, series: ArrayLike<number>, from: number, minScale: number): RetentionFit =>
    fitRetention(d.x, diffs(series, from, L - 1), d.n, d.p, { minScale });
  const heapAll = fit(full, w.heap, 0, minHeapScale);
  const recentOk = recent.n > recent.p;
  const heapRecent = recentOk ? fit(recent, w.heap, mid, minHeapScale) : undefined;
  const extAll = w.external !== undefined ? fit(full, w.external, 0, 256) : undefined;
  const extRecent = w.external !== undefined && recentOk ? fit(recent, w.external, mid, 256) : undefined;

  // Swing: do this route's requests add variance (memory moving both ways) to the heap residuals?
  const sq = new Float64Array(full.n);
  for (let i = 0; i < full.n; i++) sq[i] = heapAll.weights[i] > 0 ? heapAll.residuals[i] ** 2 : 0;
  const swingFit = fitRetention(full.x, sq, full.n, full.p, { huber: 1e9, trim: 1e9, iterations: 1 });

  const objectFits: Array<{ name: string; all: RetentionFit; recent?: RetentionFit }> = [];
  for (const [name, series] of Object.entries(w.objects ?? {})) {
    if (series.length !== L || series[L - 1] === series[0]) continue;
    objectFits.push({
      name,
      all: fit(full, series, 0, 0.5),
      recent: recentOk ? fit(recent, series, mid, 0.5) : undefined,
    });
  }

  const routes: RouteAnalysis[] = [];
  for (let r = 0; r < routeCount; r++) {
    const j = full.columnOf[r];
    const n = windowRequests[r];
    if (j < 0) {
      const evidence: RouteEvidence = { windowRequests: n, checkpoints: L };
      routes.push({ modeled: false, windowRequests: n, evidence, verdict: decideVerdict(evidence, rules) });
      continue;
    }
    const jr = recent.columnOf[r];
    const evidence: RouteEvidence = {
      windowRequests: n,
      checkpoints: L,
      heap: { all: heapAll.coefficients[j], recent: heapRecent?.coefficients[jr] },
      external: extAll ? { all: extAll.coefficients[j], recent: extRecent?.coefficients[jr] } : undefined,
      objects: objectFits.map((o) => ({ name: o.name, all: o.all.coefficients[j], recent: o.recent?.coefficients[jr] })),
      swing: swingFit.coefficients[j],
    };
    routes.push({
      modeled: true,
      windowRequests: n,
      heap: heapAll.coefficients[j],
      external: extAll?.coefficients[j],
      evidence,
      verdict: decideVerdict(evidence, rules),
    });
  }
  return { routes, checkpoints: L, heapScale: heapAll.scale, dropped: heapAll.dropped };
}
