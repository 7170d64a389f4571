import type { IncomingMessage } from 'node:http';
import type { Registry } from 'prom-client';

/**
 * What leakwatch concludes about a route.
 * - `warming-up`: too few observations yet, or growth that is flattening out (a cache filling up).
 * - `stable`: live heap does not follow this route's request count.
 * - `growing`: sustained, statistically significant retention per request, seen passively.
 * - `leaking`: confirmed by an isolation probe.
 */
export type Verdict = 'warming-up' | 'stable' | 'growing' | 'leaking';

/** `dev` forces GCs at quiescent checkpoints; `production` never forces a GC. */
export type Mode = 'dev' | 'production';

/** The request object handed to `authorize`: the Node request under either framework. */
export type AuthorizeRequest = IncomingMessage;

export interface LeakwatchOptions {
  /** Mount point of the dashboard and JSON API. Default `/__leaks`. */
  path?: string;
  /** Default: on unless `NODE_ENV === 'production'`. When off nothing is mounted or recorded. */
  enabled?: boolean;
  /** Who may open `{path}`. Default: loopback clients only, judged by the socket address. */
  authorize?: (req: AuthorizeRequest) => boolean | Promise<boolean>;
  /** How many distinct method+route keys are tracked before new ones share an overflow bucket. Default 200. */
  maxRoutes?: number;
  /** prom-client registry to register on. Default: a registry of leakwatch's own. */
  registry?: Registry;
  /** Metric name prefix. Default `leakwatch_`. */
  prefix?: string;
  /** `dev` (checkpoints with forced GCs) or `production` (natural GCs only). Default from NODE_ENV. */
  mode?: Mode;
  /** Worker count used in projections ("across N workers"). Default: the CPU count. */
  workers?: number;
  /** Samples kept per route in ring buffers. Default 128. */
  historySize?: number;
  /**
   * Object counts (active resources, globals) are sampled on one request in this many; in
   * production mode, and in dev mode under load or in the calm, also heap deltas, replay samples
   * and (on Fastify) durations. Default 8 in dev mode, 16 in production mode.
   */
  sampleEvery?: number;
  /** Request bodies larger than this are not kept for replay. Default 65536 bytes. */
  captureBodyLimit?: number;
  /** Dev only: probe a GET/HEAD route as soon as it turns `growing`. Default true in dev. */
  autoProbe?: boolean;
  /**
   * Dev mode: the longest gap between quiescent checkpoints while there is traffic (a checkpoint
   * then runs whatever the fixed budgets say, but never against `cpuBudget`). Checkpoints are
   * normally due every ~100 requests, spaced so that they take at most 8% of wall time and 5% of
   * a core; this bound matters for slow traffic (fewer than ~100 requests per interval). Default 1000.
   */
  checkpointIntervalMs?: number;
  /**
   * Dev mode: the most CPU time the detector's own work (its checkpoints' forced GCs and what
   * they cost the app afterwards, the analysis, profile reads) may take, as a share of the CPU
   * time the app itself uses. An app using less than 2% of a core counts as 2%, so that a
   * developer's few clicks still get checkpoints. `checkpointIntervalMs` never overrides it.
   * Smaller costs less and finds leaks later: at 0.1, Fastify's dev mode at 200 req/s added about
   * half the CPU of the uncapped default, and the leak zoo's verdicts took 3–5 times as many
   * requests (README, Performance, ninth round). Default: no such cap (the fixed budgets only).
   *
   * @example
   * ```ts
   * app.use(leakwatch({ cpuBudget: 0.1 })); // checkpoints within a tenth of the app's CPU
   * ```
   */
  cpuBudget?: number;
  /**
   * Dev mode, while every route the detector can judge reads `stable` (the calm): the most CPU its
   * work may take, as a share of the app's own, like `cpuBudget` (the smaller of the two rules),
   * each checkpoint charged at least 20 times its own CPU for the recompilation its forced GC sets
   * off (minutes apart for a hello-world app at 200 req/s). Between them the app's own GCs are
   * read: one that reads old space or external memory 1 MiB (or 2%) above the calm's lowest
   * reading brings the next checkpoint forward. In the calm the
   * sampling heap profiler also pauses and per-request heap deltas are read on
   * sampled requests only, as under load. A route seen for the first time, or the first sign of
   * growth (a route that no longer reads `stable`, or live heap or ArrayBuffer memory 1 MiB or 2%
   * above the calm's lowest reading), ends it, and the detector watches at full pace until all is
   * stable again. `Infinity` never calms down. Default 0.02.
   *
   * @example
   * ```ts
   * app.use(leakwatch({ calmBudget: Infinity })); // full pace even when nothing grows
   * ```
   */
  calmBudget?: number;
  /**
   * Mean bytes between two samples of V8's sampling heap profiler, which charges the live objects
   * a route's handler allocated to that route, however many requests overlap. Smaller is more
   * precise and slower: at 2048 a 1 KB/request leak is told apart after ~150 requests of its
   * route, its estimate within about ±8% (one standard deviation) after 300. `0` turns it off.
   * Default 2048 in dev mode (where the profiler pauses under load, see `loadRate`), 0 in
   * production mode (where it would cost throughput on every allocation; set it to opt in).
   */
  samplingInterval?: number;
  /**
   * Dev mode steps back under load: while more than this many requests per second arrive
   * (measured over one-second windows), it takes no checkpoint, stops the sampling heap profiler
   * and reads per-request heap deltas on sampled requests only, so that a load test measures the
   * app and not leakwatch. It resumes when the rate falls to 80% of this; the first checkpoint
   * after the load sees everything the load kept. `0` never steps back. Default 500.
   *
   * @example
   * ```ts
   * app.use(leakwatch({ loadRate: 2000 })); // a faster dev box: step back above 2,000 req/s
   * ```
   */
  loadRate?: number;
  /** Print the one-line startup notice. Default true. */
  notice?: boolean;
  /** Where leakwatch's own faults and the startup notice go. Default `console`. */
  logger?: Pick<Console, 'warn' | 'info'>;
}

export interface ResolvedOptions {
  path: string;
  enabled: boolean;
  authorize: (req: AuthorizeRequest) => boolean | Promise<boolean>;
  authorizeIsDefault: boolean;
  maxRoutes: number;
  registry: Registry | undefined;
  prefix: string;
  mode: Mode;
  workers: number;
  historySize: number;
  sampleEvery: number;
  captureBodyLimit: number;
  autoProbe: boolean;
  checkpointIntervalMs: number;
  samplingInterval: number;
  loadRate: number;
  cpuBudget: number;
  calmBudget: number;
  notice: boolean;
  logger: Pick<Console, 'warn' | 'info'>;
}

/** The request kept for replay: the last one seen on each route. */
export interface CapturedRequest {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
  /** Parsed body if a body parser ran before leakwatch recorded it. */
  body?: unknown;
  at: number;
  /** Where the request came in (the probe replays it there): the server's local port and address. */
  localPort?: number;
  localAddress?: string;
  /** True when the connection was TLS (the probe then replays over https). */
  tls?: boolean;
  /**
   * Something the route's handler functions can be read from, for the probe's scope diff: an
   * Express Route (`.stack[].handle`) or a Fastify handler function. Set by the adapters.
   */
  handlerRef?: unknown;
}

/** A route's retention estimate: bytes kept per request with a 95% interval. */
export interface RetentionEstimate {
  bytesPerRequest: number;
  low: number;
  high: number;
  /** External/ArrayBuffer bytes kept per request, reported apart from the JS heap. */
  externalBytesPerRequest: number;
  /**
   * Which estimator produced it and on how much data: `method` is 'sampling-heap-profiler',
   * 'checkpoint-regression', 'natural-gc-regression' or 'isolated-samples'; `checkpoints` the
   * checkpoints (for the profiler: its readings) behind it; `samples` the route's requests in the
   * window (isolated samples for 'isolated-samples').
   */
  basis: { method: string; checkpoints: number; samples: number };
}

/** Process-wide findings the detector keeps up to date (null until known). */
export interface ProcessFindings {
  /** JS heap bytes after the last full GC (a checkpoint or a natural mark-compact). */
  liveHeapBytes: number | null;
  /** External + ArrayBuffer bytes at the same point. */
  liveExternalBytes: number | null;
  /** ms since the Unix epoch of that measurement. */
  liveAt: number | null;
  heapGrowthBytesPerSecond: number | null;
  externalGrowthBytesPerSecond: number | null;
  rssGrowthBytesPerSecond: number | null;
  /** Seconds until the V8 heap limit at the current growth rate (null when not growing). */
  secondsToHeapLimit: number | null;
  /** RSS or external memory growing while the JS heap is flat: a native or Buffer leak. */
  nativeGrowth: boolean;
  checkpoints: number;
  /**
   * Dev mode's load guard (see the `loadRate` option): `active` while checkpoints and the heap
   * profiler are paused, `since` when that began (ms since the Unix epoch), `requestsPerSecond`
   * the rate over the last one-second window, and `episodes` how many times it has stepped back.
   */
  load: { active: boolean; since: number | null; requestsPerSecond: number; episodes: number };
  /**
   * Dev mode's calm (see the `calmBudget` option): `active` while every judged route reads
   * `stable` and the detector watches at a slower pace with the heap profiler paused, `since`
   * when that began (ms since the Unix epoch), `episodes` how many calms there have been, and
   * `reason` why the last one ended (null while none has). `nudges`: checkpoints the app's own
   * GCs brought forward in the calm, having read growth between two of its checkpoints.
   */
  calm: { active: boolean; since: number | null; episodes: number; reason: string | null; nudges: number };
  /** Live heap after each full GC, oldest first, bounded: `[msSinceEpoch, bytes, forced ? 1 : 0]`. */
  history: Array<[number, number, number]>;
}
