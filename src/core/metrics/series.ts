import type { ProcessFindings, RetentionEstimate, Verdict } from '../types';
import { DeltaHistogram, HEAP_DELTA_BOUNDS } from './histogram';

/** prom-client's AggregatorRegistry aggregators that leakwatch uses. */
export type Aggregator = 'sum' | 'average' | 'min' | 'max';

/** Every verdict word, in the order the state set lists them. */
export const VERDICTS: readonly Verdict[] = Object.freeze(['warming-up', 'stable', 'growing', 'leaking'] as Verdict[]);

/** What one route contributes to the metrics: a structural subset of RouteStats. */
export interface RouteLike {
  method: string;
  route: string;
  requests: number;
  verdict: Verdict;
  estimate: RetentionEstimate | undefined;
  probe: unknown;
  heapDeltaHistogram: DeltaHistogram;
}

/** Everything the metrics read, gathered at scrape time. */
export interface MetricSource {
  routes: Iterable<RouteLike>;
  routeCount: number;
  findings: ProcessFindings;
  heapLimitBytes: number;
  overflowed: number;
  faults: number;
  mode: string;
}

export type Labels = Record<string, string>;
export interface Sample { labels: Labels; value: number }
export interface HistogramSample { labels: Labels; cumulative: number[]; sum: number; count: number }

interface DefBase {
  /** Name without the prefix. */
  name: string;
  help: string;
  labelNames: string[];
  /** How prom-client's AggregatorRegistry combines this series across cluster workers. */
  aggregator: Aggregator;
  /** What the aggregated value means (the README's cluster table). */
  cluster: string;
}
export interface ScalarDef extends DefBase {
  type: 'gauge' | 'counter';
  collect(src: MetricSource): Sample[];
}
export interface HistogramDef extends DefBase {
  type: 'histogram';
  bounds: readonly number[];
  collect(src: MetricSource): HistogramSample[];
}
export type SeriesDef = ScalarDef | HistogramDef;

const ROUTE = ['method', 'route'];

function finite(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v);
}

/** One sample per route whose value is known; unknown values are absent, never NaN. */
function perRoute(src: MetricSource, value: (r: RouteLike) => number | null | undefined): Sample[] {
  const out: Sample[] = [];
  for (const r of src.routes) {
    const v = value(r);
    if (finite(v)) out.push({ labels: { method: r.method, route: r.route }, value: v });
  }
  return out;
}

function one(v: number | null | undefined, labels: Labels = {}): Sample[] {
  return finite(v) ? [{ labels, value: v }] : [];
}

/** The fields of a probe report the metrics use, read defensively: the probe owns its shape. */
export function probeFacts(p: unknown): { leaking: number | null; bytes: number | null; iterations: number | null } {
  if (p === null || typeof p !== 'object') return { leaking: null, bytes: null, iterations: null };
  const o = p as { verdict?: unknown; retainedBytesPerIteration?: unknown; iterations?: unknown };
  const verdict = o.verdict === 'leaking' ? 1 : o.verdict === 'stable' ? 0 : null;
  return {
    leaking: verdict,
    bytes: finite(o.retainedBytesPerIteration) ? o.retainedBytesPerIteration : null,
    iterations: finite(o.iterations) ? o.iterations : null,
  };
}

/**
 * Every series leakwatch exports, with its help text and its cluster aggregation. The values are
 * computed here at scrape time from what the recorder, detector and probe already keep.
 */
export const SERIES: readonly SeriesDef[] = Object.freeze([
  {
    name: 'route_requests_total', type: 'counter', labelNames: ROUTE, aggregator: 'sum',
    help: 'Requests recorded per route template (leakwatch\'s own and probe requests excluded).',
    cluster: 'sum: requests served by all workers',
    collect: (src) => perRoute(src, (r) => r.requests),
  },
  {
    name: 'route_retained_bytes_per_request', type: 'gauge', labelNames: ROUTE, aggregator: 'average',
    help: 'Estimated bytes of JS heap the process keeps per request of this route (absent until estimated).',
    cluster: 'average of the workers that have an estimate (unweighted)',
    collect: (src) => perRoute(src, (r) => r.estimate?.bytesPerRequest),
  },
  {
    name: 'route_retained_bytes_per_request_low', type: 'gauge', labelNames: ROUTE, aggregator: 'min',
    help: 'Lower bound of the 95% interval of route_retained_bytes_per_request.',
    cluster: 'min: the lowest lower bound of any worker (an envelope)',
    collect: (src) => perRoute(src, (r) => r.estimate?.low),
  },
  {
    name: 'route_retained_bytes_per_request_high', type: 'gauge', labelNames: ROUTE, aggregator: 'max',
    help: 'Upper bound of the 95% interval of route_retained_bytes_per_request.',
    cluster: 'max: the highest upper bound of any worker (an envelope)',
    collect: (src) => perRoute(src, (r) => r.estimate?.high),
  },
  {
    name: 'route_external_bytes_per_request', type: 'gauge', labelNames: ROUTE, aggregator: 'average',
    help: 'Estimated external and ArrayBuffer bytes kept per request of this route (absent until estimated).',
    cluster: 'average of the workers that have an estimate (unweighted)',
    collect: (src) => perRoute(src, (r) => r.estimate?.externalBytesPerRequest),
  },
  {
    name: 'route_verdict', type: 'gauge', labelNames: [...ROUTE, 'verdict'], aggregator: 'sum',
    help: 'Verdict per route as a state set: 1 for the current verdict, 0 for the other three.',
    cluster: 'sum: how many workers hold each verdict (alert on > 0)',
    collect: (src) => {
      const out: Sample[] = [];
      for (const r of src.routes) {
        for (const v of VERDICTS) out.push({ labels: { method: r.method, route: r.route, verdict: v }, value: r.verdict === v ? 1 : 0 });
      }
      return out;
    },
  },
  {
    name: 'route_heap_delta_bytes', type: 'histogram', labelNames: ROUTE, aggregator: 'sum', bounds: HEAP_DELTA_BOUNDS,
    help: 'Heap used after minus before each request: mostly the garbage it made, not what it keeps. Negative deltas (a GC ran) count in le="0" and not in _sum.',
    cluster: 'sum: buckets, _sum and _count of all workers',
    collect: (src) => {
      const out: HistogramSample[] = [];
      for (const r of src.routes) {
        const h = r.heapDeltaHistogram;
        out.push({ labels: { method: r.method, route: r.route }, cumulative: h.cumulative(), sum: h.sum, count: h.count });
      }
      return out;
    },
  },
  {
    name: 'route_probe_retained_bytes_per_iteration', type: 'gauge', labelNames: ROUTE, aggregator: 'max',
    help: 'Bytes retained per iteration by the last isolation probe of this route (absent until probed).',
    cluster: 'max: the worst probe result of any worker',
    collect: (src) => perRoute(src, (r) => probeFacts(r.probe).bytes),
  },
  {
    name: 'route_probe_iterations', type: 'gauge', labelNames: ROUTE, aggregator: 'max',
    help: 'Measured iterations of the last isolation probe of this route.',
    cluster: 'max',
    collect: (src) => perRoute(src, (r) => probeFacts(r.probe).iterations),
  },
  {
    name: 'route_probe_leaking', type: 'gauge', labelNames: ROUTE, aggregator: 'sum',
    help: '1 if the last isolation probe of this route said leaking, 0 if it said stable (absent until probed).',
    cluster: 'sum: how many workers\' last probe said leaking',
    collect: (src) => perRoute(src, (r) => probeFacts(r.probe).leaking),
  },
  {
    name: 'processes', type: 'gauge', labelNames: ['mode'], aggregator: 'sum',
    help: 'Always 1 per process: summed across cluster workers it counts them.',
    cluster: 'sum: number of workers reporting',
    collect: (src) => [{ labels: { mode: src.mode }, value: 1 }],
  },
  {
    name: 'routes', type: 'gauge', labelNames: [], aggregator: 'max',
    help: 'Route keys tracked (bounded by the maxRoutes option, plus one unmatched and one overflow bucket per method).',
    cluster: 'max: the largest route table of any worker',
    collect: (src) => one(src.routeCount),
  },
  {
    name: 'route_overflow_requests_total', type: 'counter', labelNames: [], aggregator: 'sum',
    help: 'Requests counted in the (other) bucket because the route table was full.',
    cluster: 'sum',
    collect: (src) => one(src.overflowed),
  },
  {
    name: 'heap_live_bytes', type: 'gauge', labelNames: [], aggregator: 'sum',
    help: 'JS heap bytes after the last full GC: live memory, not garbage (absent until measured).',
    cluster: 'sum: live heap of all workers',
    collect: (src) => one(src.findings.liveHeapBytes),
  },
  {
    name: 'heap_live_timestamp_seconds', type: 'gauge', labelNames: [], aggregator: 'min',
    help: 'Unix time of the heap_live_bytes measurement.',
    cluster: 'min: the stalest worker\'s measurement',
    collect: (src) => one(src.findings.liveAt === null ? null : src.findings.liveAt / 1000),
  },
  {
    name: 'heap_limit_bytes', type: 'gauge', labelNames: [], aggregator: 'sum',
    help: 'V8 heap size limit of the process.',
    cluster: 'sum: so heap_live_bytes / heap_limit_bytes stays a fill ratio',
    collect: (src) => one(src.heapLimitBytes),
  },
  {
    name: 'heap_growth_bytes_per_second', type: 'gauge', labelNames: [], aggregator: 'sum',
    help: 'Growth rate of the live heap after full GCs (absent until estimated).',
    cluster: 'sum: the fleet\'s growth rate',
    collect: (src) => one(src.findings.heapGrowthBytesPerSecond),
  },
  {
    name: 'heap_seconds_to_limit', type: 'gauge', labelNames: [], aggregator: 'min',
    help: 'Seconds until the V8 heap limit at the current growth rate (absent when not growing).',
    cluster: 'min: the first worker to run out',
    collect: (src) => one(src.findings.secondsToHeapLimit),
  },
  {
    name: 'external_live_bytes', type: 'gauge', labelNames: [], aggregator: 'sum',
    help: 'External and ArrayBuffer bytes at the last full GC (absent until measured).',
    cluster: 'sum',
    collect: (src) => one(src.findings.liveExternalBytes),
  },
  {
    name: 'external_growth_bytes_per_second', type: 'gauge', labelNames: [], aggregator: 'sum',
    help: 'Growth rate of external and ArrayBuffer memory (Buffers, native addons).',
    cluster: 'sum',
    collect: (src) => one(src.findings.externalGrowthBytesPerSecond),
  },
  {
    name: 'rss_growth_bytes_per_second', type: 'gauge', labelNames: [], aggregator: 'sum',
    help: 'Growth rate of the resident set size.',
    cluster: 'sum',
    collect: (src) => one(src.findings.rssGrowthBytesPerSecond),
  },
  {
    name: 'native_growth', type: 'gauge', labelNames: [], aggregator: 'sum',
    help: '1 when RSS or external memory grows while the JS heap is flat: a native or Buffer leak.',
    cluster: 'sum: how many workers show native growth',
    collect: (src) => one(src.findings.nativeGrowth ? 1 : 0),
  },
  {
    name: 'checkpoints_total', type: 'counter', labelNames: [], aggregator: 'sum',
    help: 'Full-GC measurement points (forced checkpoints and natural mark-compacts) the detector used.',
    cluster: 'sum',
    collect: (src) => one(src.findings.checkpoints),
  },
  {
    name: 'faults_total', type: 'counter', labelNames: [], aggregator: 'sum',
    help: 'Internal faults leakwatch caught and kept away from the app.',
    cluster: 'sum',
    collect: (src) => one(src.faults),
  },
] as SeriesDef[]);
