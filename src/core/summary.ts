import type { RouteStats } from './recorder';
import type { Verdict } from './types';
import { performance } from 'node:perf_hooks';

/** One route as the JSON API returns it (`GET {path}/api/routes`). */
export interface RouteSummary {
  key: string;
  method: string;
  route: string;
  requests: number;
  verdict: Verdict;
  verdictReason: string;
  /** Estimated bytes the process keeps per request of this route (null until there is an estimate). */
  retainedBytesPerRequest: number | null;
  retainedBytesPerRequestLow: number | null;
  retainedBytesPerRequestHigh: number | null;
  externalBytesPerRequest: number | null;
  basis: { method: string; checkpoints: number; samples: number } | null;
  /**
   * Mean heap delta per request: the garbage a request makes, not what it keeps. Over every
   * request in dev mode; over the sampled ones (one in `sampleEvery`) in production mode.
   */
  garbageBytesPerRequest: number;
  externalDeltaPerRequest: number;
  /** Over `timedRequests`. */
  meanDurationMs: number;
  meanConcurrency: number;
  /**
   * Requests whose duration was measured: all of them, except on Fastify in production mode,
   * where one request in `sampleEvery` per route is timed and the others are only counted.
   */
  timedRequests: number;
  /** Share of requests during which a GC ran. */
  gcShare: number;
  serverErrors: number;
  aborted: number;
  resourceDeltaPerSampledRequest: Record<string, number>;
  globalsAdded: string[];
  findings: Record<string, unknown>;
  /** ms since the Unix epoch. */
  firstSeenMs: number;
  /** On Fastify in production mode, to within the process's last timed request (one in `sampleEvery`). */
  lastSeenMs: number;
}

const CONCERN: Record<Verdict, number> = { leaking: 3, growing: 2, 'warming-up': 1, stable: 0 };

export function summarize(s: RouteStats): RouteSummary {
  const e = s.estimate;
  const resources: Record<string, number> = {};
  if (s.sampled > 0) for (const [t, d] of s.resourceDelta) resources[t] = d / s.sampled;
  return {
    key: s.key,
    method: s.method,
    route: s.route,
    requests: s.requests,
    verdict: s.verdict,
    verdictReason: s.verdictReason,
    retainedBytesPerRequest: e ? e.bytesPerRequest : null,
    retainedBytesPerRequestLow: e ? e.low : null,
    retainedBytesPerRequestHigh: e ? e.high : null,
    externalBytesPerRequest: e ? e.externalBytesPerRequest : null,
    basis: e ? { ...e.basis } : null,
    // Heap deltas are read on every request in dev mode, on sampled ones in production mode.
    garbageBytesPerRequest: s.sumHeapDelta / (s.heapSamples || 1),
    externalDeltaPerRequest: s.sumExternalDelta / (s.heapSamples || 1),
    // Timed requests: all of them, or one in sampleEvery per route under Fastify in production.
    meanDurationMs: s.sumDurationMs / (s.timed || 1),
    meanConcurrency: s.sumInFlight / (s.timed || 1) + 1,
    timedRequests: s.timed,
    gcShare: s.withGc / (s.heapSamples || 1),
    serverErrors: s.serverErrors,
    aborted: s.aborted,
    resourceDeltaPerSampledRequest: resources,
    globalsAdded: [...s.globalsAdded],
    findings: { ...s.findings },
    firstSeenMs: Math.round(performance.timeOrigin + s.firstSeen),
    lastSeenMs: Math.round(performance.timeOrigin + s.lastSeen),
  };
}

/** Routes sorted by concern: verdict first, then retained bytes per request, then traffic. */
export function byConcern(a: RouteSummary, b: RouteSummary): number {
  return CONCERN[b.verdict] - CONCERN[a.verdict]
    || (b.retainedBytesPerRequest ?? 0) - (a.retainedBytesPerRequest ?? 0)
    || b.requests - a.requests
    || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);
}
