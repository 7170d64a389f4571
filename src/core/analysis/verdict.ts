import type { Coefficient } from './regression';
import { formatBytes, formatCount } from './projection';
import type { IsolatedSummary } from './isolated';
import type { SampledCoefficient } from './sampled';

/** One kind of evidence about a route: its fit over the whole window and over the recent half. */
export interface Signal {
  all: Coefficient;
  recent?: Coefficient;
}

/** What the checkpoint analysis knows about one route. */
export interface RouteEvidence {
  /** Requests of this route inside the analysed window. */
  windowRequests: number;
  /** Checkpoints in the window. */
  checkpoints: number;
  heap?: Signal;
  external?: Signal;
  /** Object counts that grow with this route: globals, Timeouts, … */
  objects?: Array<{ name: string } & Signal>;
  /** Requests run alone between two forced GCs (see summarizeIsolated). */
  isolated?: IsolatedSummary;
  /**
   * Live bytes the sampling heap profiler charges to this route's own handlers, against its own
   * requests (see fitSampled): immune to other routes' traffic.
   */
  sampled?: { all: SampledCoefficient; recent?: SampledCoefficient };
}

export interface VerdictRules {
  minCheckpoints: number;
  minRequests: number;
  /** Smallest retention called growing, per request (heap and external each). */
  minBytes: number;
  /** z-score the whole-window estimate must reach. */
  z: number;
  /** z-score the recent half must reach for the growth to count as sustained. */
  zRecent: number;
  minObjectsPerRequest: number;
  zObjects: number;
  /** Isolated samples needed before they can decide `growing` (default 12). */
  minIsolated?: number;
  /**
   * The lower 95% bound an isolated figure must clear (default 512 B): a no-op request reads one of
   * two levels about 640 B apart (−208 or +432 B on Express), so a run of the upper one alone must
   * not read as a leak.
   */
  minIsolatedBytes?: number;
  /**
   * z-scores for the sampling heap profiler's figures (whole window, recent half). Lower than the
   * regression's: they see one route alone, so another route's leak cannot leak into them, and the
   * 256 B floor (`minBytes`) still applies. Defaults 2.5 and 2; with the 3-in-a-row confirmation no zoo control came near.
   */
  zSampled?: number;
  zSampledRecent?: number;
}

/** Defaults chosen on the zoo benchmark (see test/bench/detect.ts). */
export const DEFAULT_RULES: VerdictRules = {
  minCheckpoints: 8,
  minRequests: 60,
  minBytes: 256,
  z: 4,
  zRecent: 3,
  minObjectsPerRequest: 0.05,
  zObjects: 6,
  minIsolated: 12,
  minIsolatedBytes: 512,
  zSampled: 2.5,
  zSampledRecent: 2,
};

export interface VerdictResult {
  verdict: 'warming-up' | 'stable' | 'growing';
  reason: string;
  /** Which evidence decided `growing`: 'sampled', 'heap', 'isolated', 'external' or 'objects:<name>'. */
  basis?: string;
}

type Test = 'sustained' | 'flattening' | 'none';

/** Net growth, in sampling intervals (96 KB at 8192; the byte floor below rules at the default 2048), before the profiler's figures can say `growing`. */
const MIN_SAMPLED_GROWTH = 12;
/**
 * And never less than 96 KB: at a finer interval the plateau's noise shrinks but a cache's size
 * does not (simulated at 4096 with the 12-interval floor alone, 49 KB, the 52 KB LRU filling in
 * the window read growing three analyses in a row in 23 of 400 short runs; with 96 KB in 1).
 */
const MIN_SAMPLED_GROWTH_BYTES = 96 * 1024;

/** Net growth of a route's sampled level needed before it can read `growing`. */
export function sampledGrowthFloor(interval: number): number {
  return Math.max(MIN_SAMPLED_GROWTH * interval, MIN_SAMPLED_GROWTH_BYTES);
}

function judge(s: Signal | undefined, min: number, z: number, zRecent: number, recentShare = 1 / 3): Test {
  if (s === undefined) return 'none';
  const a = s.all;
  if (!(a.unconstrained >= min && a.z >= z)) return 'none';
  const r = s.recent;
  // Sustained: the recent half still grows, at a rate of the same order as the whole window.
  // A cache that fills then stops shows a strong early slope and a flat recent half.
  if (r !== undefined && r.z >= zRecent && r.unconstrained >= a.unconstrained * recentShare) return 'sustained';
  return 'flattening';
}

function judgeIsolated(s: IsolatedSummary | undefined, rules: VerdictRules): Test {
  if (s === undefined || s.all.n < (rules.minIsolated ?? 12)) return 'none';
  const a = s.all;
  if (!(a.estimate >= rules.minBytes && a.low >= (rules.minIsolatedBytes ?? 512) && a.z >= rules.z)) return 'none';
  const r = s.recent;
  if (r !== undefined && r.n >= Math.ceil((rules.minIsolated ?? 12) / 2) && r.z >= rules.zRecent && r.estimate >= a.estimate / 3) return 'sustained';
  return 'flattening';
}

/**
 * Turns a route's evidence into `warming-up`, `stable` or `growing`. Pure: the same evidence gives
 * the same verdict. `growing` needs sustained, significant growth: significant over the window
 * AND still significant in its recent half, so a cache that fills up and stops reads
 * `warming-up` (flattening out), never `growing`.
 *
 * @example
 * ```ts
 * const c = (b: number, se: number) => ({ estimate: b, unconstrained: b, se, low: b - 2 * se, high: b + 2 * se, z: b / se });
 * decideVerdict({ windowRequests: 500, checkpoints: 30, heap: { all: c(1000, 50), recent: c(1000, 90) } }).verdict; // 'growing'
 * ```
 */
export function decideVerdict(e: RouteEvidence, rules: VerdictRules = DEFAULT_RULES): VerdictResult {
  if (e.checkpoints < rules.minCheckpoints || e.windowRequests < rules.minRequests) {
    return {
      verdict: 'warming-up',
      reason: `too few observations yet: ${formatCount(e.windowRequests)} requests over ${e.checkpoints} checkpoints `
        + `(need ${rules.minRequests} and ${rules.minCheckpoints})`,
    };
  }
  const heap = judge(e.heap, rules.minBytes, rules.z, rules.zRecent);
  const ext = judge(e.external, rules.minBytes, rules.z, rules.zRecent);
  let objectName: string | undefined;
  let objectTest: Test = 'none';
  // The strongest sustained series names the cause: a listener added on every request (exact,
  // z in the millions) rather than a series this route shares with others.
  let objectZ = -Infinity;
  for (const o of e.objects ?? []) {
    const t = judge(o, rules.minObjectsPerRequest, rules.zObjects, rules.zRecent);
    if (t === 'sustained' && (objectTest !== 'sustained' || o.all.z > objectZ)) { objectTest = t; objectName = o.name; objectZ = o.all.z; }
    else if (t === 'flattening' && objectTest === 'none') { objectTest = t; objectName = o.name; }
  }
  let sampled: Test | 'young' = judge(e.sampled, rules.minBytes, rules.zSampled ?? 2.5, rules.zSampledRecent ?? 2);
  // And the window must have grown by at least MIN_SAMPLED_GROWTH sampling intervals: a bounded
  // cache still filling reads exactly like a young leak, and its sampled level wanders by a few
  // samples. Simulated (400 seeded runs each): an LRU of 50 × 1 KB filling in the window read
  // growing three analyses in a row in 3 runs with no such floor, 2–4 with 8 intervals, none with
  // 12; a 1 KB/request leak with only 136 requests in the window is then found in 62% of runs, with
  // 300 requests in 98.5%. (A rule that the recent half keep half the early half's rate, tried
  // for the same LRU, cost detections and no false alarm it prevented.)
  const all = e.sampled?.all;
  if (sampled === 'sustained' && all !== undefined && all.growth < sampledGrowthFloor(all.interval)) sampled = 'young';
  if (sampled === 'sustained') {
    const c = e.sampled!.all;
    return { verdict: 'growing', basis: 'sampled', reason: `objects allocated by this route's handlers stay alive: ${formatBytes(c.unconstrained)} per request (95% ${formatBytes(Math.max(0, c.low))}–${formatBytes(c.high)}, sampling heap profiler), still growing in the recent half of the window` };
  }
  if (heap === 'sustained') {
    const c = e.heap!.all;
    return { verdict: 'growing', basis: 'heap', reason: `live JS heap grows ${formatBytes(c.unconstrained)} per request (95% ${formatBytes(Math.max(0, c.low))}–${formatBytes(c.high)}), still growing in the recent half of the window` };
  }
  const iso = judgeIsolated(e.isolated, rules);
  // Isolated samples are exact for the requests sampled, but they must not contradict the
  // regression, which sees every request: its 95% interval has to reach half the isolated figure.
  const isoAgrees = e.heap === undefined || e.heap.all.high >= (e.isolated?.all.estimate ?? 0) / 2;
  if (iso === 'sustained' && isoAgrees) {
    const c = e.isolated!.all;
    return { verdict: 'growing', basis: 'isolated', reason: `a request run alone keeps ${formatBytes(c.estimate)} of live JS heap (95% ${formatBytes(Math.max(0, c.low))}–${formatBytes(c.high)}, ${c.n} isolated samples), still in the recent half` };
  }
  if (ext === 'sustained') {
    const c = e.external!.all;
    return { verdict: 'growing', basis: 'external', reason: `external (Buffer/ArrayBuffer) memory grows ${formatBytes(c.unconstrained)} per request (95% ${formatBytes(Math.max(0, c.low))}–${formatBytes(c.high)}) while this is outside the JS heap` };
  }
  if (objectTest === 'sustained') {
    const o = e.objects!.find((x) => x.name === objectName)!;
    return { verdict: 'growing', basis: `objects:${objectName}`, reason: `${objectName} count grows ${o.all.unconstrained.toFixed(2)} per request and keeps growing` };
  }
  if (sampled === 'young') {
    const c = e.sampled!.all;
    return { verdict: 'warming-up', reason: `growing ${formatBytes(c.unconstrained)} per request so far, but only ${formatBytes(c.growth)} in all: a cache still filling looks the same until ${formatBytes(sampledGrowthFloor(c.interval))}` };
  }
  if (heap === 'flattening' || ext === 'flattening' || objectTest === 'flattening' || iso === 'flattening' || sampled === 'flattening') {
    return { verdict: 'warming-up', reason: 'grew earlier in the window but the growth is flattening out (like a cache filling up)' };
  }
  const c = e.sampled?.all ?? e.heap?.all;
  return {
    verdict: 'stable',
    reason: c === undefined ? 'no growth seen' : `no sustained growth: ${formatBytes(c.estimate)} per request (95% up to ${formatBytes(Math.max(0, c.high))})`,
  };
}
