import v8 from 'node:v8';
import type { IncomingMessage } from 'node:http';
import { Ring } from './ring';
import { gcWatch } from './gcwatch';
import type { CapturedRequest, RetentionEstimate, Verdict } from './types';
import { DELTA_HISTOGRAM_BYTES, DeltaHistogram } from './metrics/histogram';
import { prop } from './prop';
// Imported rather than read from the global: Node's global `performance` is an accessor whose getter
// runs on every read (callgrind, Fastify production: ~470 instructions per request in the getter
// and global-load misses).
import { performance } from 'node:perf_hooks';

/** Route label for requests no route matched (404s): one bucket per method, never one per URL. */
export const UNMATCHED = '(unmatched)';
/** Route label shared by new routes once `maxRoutes` is reached. */
export const OVERFLOW = '(other)';

/** Globals present when leakwatch started, so only ones added afterwards are reported. */
function globalNames(): string[] {
  return Object.getOwnPropertyNames(globalThis);
}

/**
 * Enumerable globals, counted. About 10x cheaper than getOwnPropertyNames(globalThis) (0.6 µs vs
 * 6–15 µs here, the global object being a dictionary), and accidental globals (sloppy
 * assignment, `globalThis.x = …`) are enumerable, so a change in this count triggers the full scan.
 */
function enumerableGlobalCount(): number {
  let n = 0;
  for (const _ in globalThis) n++;
  return n;
}

/** Sampled requests closer together than this skip the globals check: it costs ~1 µs per check. */
const GLOBALS_CHECK_MS = 50;
/**
 * Production mode also spaces globals checks by sampled requests: two for-in walks of the global
 * object cost ~20k instructions, which the time limit alone charges to few requests when traffic is
 * slow (bench:overhead's callgrind rate read it as +2k instructions per request).
 */
const GLOBALS_CHECK_SAMPLES = 32;
/**
 * Production mode reads active resources on one sampled request in this many (one request in
 * 128 at production's default sampleEvery of 16). `process.getActiveResourcesInfo()` builds a string per open
 * handle, twice per reading: callgrind put it at ~950 instructions per request on a Fastify hello
 * route with 10 keep-alive connections when every sampled request read it, and it grows with
 * the connections. The per-route deltas are averages over readings, so fewer readings only
 * widen them.
 */
const RESOURCE_SAMPLES = 8;

/** Per-route aggregates. Everything is fixed-size: rings and running sums, never growing arrays. */
export class RouteStats {
  requests = 0;
  /** Responses with status >= 500, and requests that ended without a response (aborted). */
  serverErrors = 0;
  aborted = 0;
  firstSeen: number;
  lastSeen: number;
  sumDurationMs = 0;
  /**
   * Requests whose heap delta was read, the denominator of `sumHeapDelta`, `sumExternalDelta`,
   * `withGc` and of the heap-delta ring and histogram: every request in dev mode, one in
   * `sampleEvery` in production mode, where the two V8 heap reads were most of the recorder's
   * per-request cost (bench:hotpath).
   */
  heapSamples = 0;
  sumHeapDelta = 0;
  sumExternalDelta = 0;
  /** Requests during which at least one GC ran: their heap delta is not the garbage they made. */
  withGc = 0;
  /**
   * Requests that were timed, the denominator of `sumDurationMs`, `sumInFlight` and the duration
   * ring: every request, except under the Fastify adapter in production mode, which times one
   * request in `sampleEvery` per route and counts the others (see Recorder.countsNext).
   */
  timed = 0;
  /** Sum over timed requests of the number in flight when each started; mean concurrency = this / timed. */
  sumInFlight = 0;
  /** Requests since this route's last timed one (counted follow, see Recorder.countsNext). */
  countTick = 0;
  readonly durationMs: Ring;
  readonly heapDelta: Ring;
  readonly externalDelta: Ring;
  /** Cumulative heap-delta bucket counts for the Prometheus histogram (a few ns per request). */
  readonly heapDeltaHistogram: DeltaHistogram;
  /** Sampled object-count deltas: active resources by type, cumulated over sampled requests. */
  sampled = 0;
  readonly resourceDelta = new Map<string, number>();
  /** Global property names that appeared while this route was being served (capped). */
  readonly globalsAdded: string[] = [];
  /** Reused in place for each request so capturing never allocates per request. */
  lastRequest: CapturedRequest | undefined;

  // Written by the detector and the probe; read by the API, dashboard and metrics.
  verdict: Verdict = 'warming-up';
  verdictReason = 'too few observations yet';
  estimate: RetentionEstimate | undefined;
  /** Free-form extra findings the analysis attaches (native growth, data-dependent growth, ...). */
  findings: Record<string, unknown> = {};
  probe: unknown;
  /**
   * Trampoline id of this route for the sampling heap profiler (src/core/attribution.ts); -1 until
   * the adapter tried to wrap its handlers, -2 when it could not.
   */
  attributionId = -1;

  constructor(readonly key: string, readonly method: string, readonly route: string, history: number, now: number) {
    // float32: a ring's values are display-grade (ms durations, byte deltas exact below 16 MB),
    // and halving them keeps the tracker under 5 MB at 1,000 routes (bench:memory). One buffer for
    // the histogram and the three rings: an ArrayBuffer each cost 264 B more per route there.
    const buf = new ArrayBuffer(DELTA_HISTOGRAM_BYTES + 3 * 4 * history);
    this.heapDeltaHistogram = new DeltaHistogram(buf, 0);
    this.durationMs = new Ring(history, 'float32', buf, DELTA_HISTOGRAM_BYTES);
    this.heapDelta = new Ring(history, 'float32', buf, DELTA_HISTOGRAM_BYTES + 4 * history);
    this.externalDelta = new Ring(history, 'float32', buf, DELTA_HISTOGRAM_BYTES + 8 * history);
    this.firstSeen = now;
    this.lastSeen = now;
  }
}

/** What `onFinish` gets for a counted request: one that started before any timed request now running. */
const COUNTED_STATE: RequestState = { t0: -Infinity, heap0: -1, ext0: 0, gc0: 0, inFlight: 0, resources0: undefined, globals0: -1, sampled: false, ctx: undefined };

/** What the adapters carry from the start of a request to its end. */
export interface RequestState {
  t0: number;
  /** used_heap_size at the start, or -1 when this request's heap delta is not read. */
  heap0: number;
  ext0: number;
  gc0: number;
  inFlight: number;
  resources0: string[] | undefined;
  /** Enumerable global count at the start of a sampled, globals-checked request (-1 otherwise). */
  globals0: number;
  /** True on the one request in `sampleEvery` that reads heap, resources and captures a replay sample. */
  sampled: boolean;
  /** The adapter's own slot (its request object), so that it needs no side table of its own. */
  ctx: unknown;
}

const GLOBALS_PER_ROUTE = 32;
const RESOURCE_TYPES_PER_ROUTE = 32;

/**
 * The framework-free recorder. Adapters call `start()` when a request arrives and `finish()` when
 * its response is done; everything costly (analysis, GC, snapshots) happens elsewhere.
 */
export class Recorder {
  readonly routes = new Map<string, RouteStats>();
  /**
   * Requests started and not yet finished, as the hot path keeps it: counted requests that ended
   * but wait on their connection to be settled (core/counted.ts) are still in it. Read `inFlight`.
   */
  active = 0;
  /**
   * What ends the counted requests that have finished but wait on their connection to be settled
   * (core/counted.ts); run before `inFlight` is read, and by readers of the counts (`settle()`).
   */
  settler: (() => void) | undefined = undefined;
  totalRequests = 0;
  /** How many requests fell into an overflow bucket because the route table was full. */
  overflowed = 0;
  private sampleTick = 0;
  /** performance.now() at the last timed request's start or end: counted requests' lastSeen. */
  private clock = 0;
  /** method → route → stats: finds a route without building the `method + ' ' + route` key. */
  private readonly index = new Map<string, Map<string, RouteStats>>();
  private lastGlobalsCheck = -Infinity;
  private globalsTick = GLOBALS_CHECK_SAMPLES;
  private resourcesTick = RESOURCE_SAMPLES;
  private enumerableGlobals = enumerableGlobalCount();
  private readonly knownGlobals: Set<string>;
  private readonly initialGlobals: ReadonlySet<string>;
  private globalCount: number;
  readonly startedAt = Date.now();
  /**
   * Called after each recorded request. Set by a feature only while it needs it (the warnings
   * log, waiting to name the routes in flight), so the hot path pays one check otherwise.
   */
  onFinish: ((stats: RouteStats, state: RequestState) => void) | undefined = undefined;

  constructor(
    private readonly maxRoutes: number,
    private readonly historySize: number,
    private readonly sampleEvery: number,
    private readonly captureBodyLimit: number,
    /** Read heap deltas on sampled requests only (production mode); every request otherwise. */
    private heapSampled = false,
    /** Production mode: replay samples and globals checks on sampled requests only (see start/finish). */
    private lean = heapSampled,
  ) {
    this.base = { heapSampled, lean };
    const names = globalNames();
    this.knownGlobals = new Set(names);
    this.initialGlobals = new Set(names);
    this.globalCount = names.length;
  }

  /**
   * Whether an adapter that knows the route when a request starts may count most requests
   * (countsNext): in production mode, and in dev mode while it records lightly (`light(true)`:
   * under load or in the calm); not while `onFinish` waits to name the routes in flight.
   */
  get counts(): boolean {
    return this.lean && this.onFinish === undefined;
  }

  /** The constructor's settings, which `light(false)` puts back. */
  private readonly base: { heapSampled: boolean; lean: boolean };

  /**
   * Dev mode under load (the detector's load guard): record as production mode does, heap deltas
   * and replay samples on sampled requests only, until `light(false)`. Per-request heap deltas are
   * for the charts of a developer's clicks; under a load test one request in `sampleEvery` is
   * plenty, and the two V8 heap reads were most of the recorder's cost (bench:hotpath).
   */
  light(on: boolean): void {
    this.heapSampled = on || this.base.heapSampled;
    this.lean = on || this.base.lean;
  }

  /** Globals that appeared since leakwatch started, in order of discovery. */
  addedGlobals(): string[] {
    const out: string[] = [];
    for (const name of globalNames()) if (!this.initialGlobals.has(name)) out.push(name);
    return out;
  }

  /**
   * Counted follow (production mode, for an adapter that knows a request's route when it starts):
   * true when this request on `stats`'s route need only be counted, with `startCounted()` and
   * `finishCounted()` (core/counted.ts): no clock, no heap reading, no per-request state. One request in
   * `sampleEvery` per route (and each route's first) is started with `start(true)` instead, so
   * durations, concurrency, heap deltas and replay samples come from those; request, error and
   * aborted counts and the in-flight count stay exact. Counting per route, not per process,
   * keeps a route whose requests alternate with another's from never being timed.
   */
  countsNext(stats: RouteStats): boolean {
    if (stats.timed === 0) return false;
    if (++stats.countTick < this.sampleEvery) return true;
    stats.countTick = 0;
    return false;
  }

  /** Starts a counted request (see countsNext). */
  startCounted(): void {
    this.active++;
  }

  /** Ends a counted request on `stats`'s route. */
  finishCounted(stats: RouteStats, status: number, aborted: boolean): void {
    this.active = this.active > 0 ? this.active - 1 : 0;
    this.totalRequests++;
    stats.requests++;
    // No clock read here: the last timed request's time in the process (one in sampleEvery).
    if (stats.lastSeen < this.clock) stats.lastSeen = this.clock;
    if (aborted) stats.aborted++;
    else if (status >= 500) stats.serverErrors++;
    if (this.onFinish !== undefined) this.onFinish(stats, COUNTED_STATE);
  }

  /**
   * Starts a timed request. `sample` forces the heap, resource and replay sample of one request
   * in `sampleEvery` (counted follow decides per route); by default one request in `sampleEvery`
   * process-wide is sampled.
   */
  start(sample?: boolean): RequestState {
    const t0 = performance.now();
    this.clock = t0;
    let resources0: string[] | undefined;
    let globals0 = -1;
    const sampled = sample ?? ++this.sampleTick >= this.sampleEvery;
    if (sampled) {
      this.sampleTick = 0;
      if (!this.lean || ++this.resourcesTick >= RESOURCE_SAMPLES) {
        this.resourcesTick = 0;
        resources0 = process.getActiveResourcesInfo();
        // The globals check is throttled in time: at high request rates a few checks per second
        // find a global-per-request leak just as well, at a fraction of the cost.
        const due = !this.lean || ++this.globalsTick >= GLOBALS_CHECK_SAMPLES / RESOURCE_SAMPLES;
        if (due && t0 - this.lastGlobalsCheck >= GLOBALS_CHECK_MS) {
          this.lastGlobalsCheck = t0;
          this.globalsTick = 0;
          globals0 = enumerableGlobalCount();
        }
      }
    }
    // Read after the sampling above, so that its arrays are not charged to the request.
    let heap0 = -1;
    let ext0 = 0;
    if (sampled || !this.heapSampled) {
      const hs = v8.getHeapStatistics();
      heap0 = hs.used_heap_size;
      ext0 = (hs as { external_memory?: number }).external_memory ?? 0;
    }
    return {
      t0,
      heap0,
      ext0,
      gc0: gcWatch.count,
      inFlight: this.active++,
      resources0,
      globals0,
      sampled,
      ctx: undefined,
    };
  }

  /**
   * Records a finished request. `route` is the template (or UNMATCHED). `req` is kept as the
   * route's replay sample when given, with `body`, or with `bodyOf(req)` when that is given: read
   * only when a sample is kept (one request in `sampleEvery` in production mode).
   */
  finish(state: RequestState, method: string, route: string, status: number, aborted: boolean, req?: IncomingMessage, body?: unknown, bodyOf?: (req: IncomingMessage) => unknown): RouteStats {
    const t1 = performance.now();
    this.clock = t1;
    const hs = state.heap0 >= 0 ? v8.getHeapStatistics() : undefined;
    this.active = this.active > 0 ? this.active - 1 : 0;
    this.totalRequests++;
    const stats = this.routeFor(method, route);
    const duration = t1 - state.t0;
    stats.requests++;
    stats.lastSeen = t1;
    stats.timed++;
    stats.sumDurationMs += duration;
    stats.sumInFlight += state.inFlight;
    stats.durationMs.push(duration);
    if (hs !== undefined) {
      const heapDelta = hs.used_heap_size - state.heap0;
      const extDelta = ((hs as { external_memory?: number }).external_memory ?? 0) - state.ext0;
      stats.heapSamples++;
      stats.sumHeapDelta += heapDelta;
      stats.sumExternalDelta += extDelta;
      stats.heapDelta.push(heapDelta);
      stats.heapDeltaHistogram.observe(heapDelta);
      stats.externalDelta.push(extDelta);
      // A negative delta means a GC ran even if its observer entry has not been delivered yet.
      if (gcWatch.count !== state.gc0 || heapDelta < 0) stats.withGc++;
    }
    if (aborted) stats.aborted++;
    else if (status >= 500) stats.serverErrors++;
    if (state.resources0 !== undefined) this.sampleObjects(stats, state.resources0, state.globals0);
    // Production mode keeps a replay sample from sampled requests only (and from a route's first):
    // a sample is as good as the last one for a probe, and capture() read six properties of the
    // request and its socket on every request (callgrind: ~350 instructions in capture alone).
    if (req !== undefined && (state.sampled || !this.lean || stats.lastRequest === undefined)) this.capture(stats, req, bodyOf !== undefined ? bodyOf(req) : body, t1);
    if (this.onFinish !== undefined) this.onFinish(stats, state);
    return stats;
  }

  /**
   * Requests in flight: started and not finished. Counted requests that finished while waiting on
   * an idle connection are settled first, so this is exact when read.
   */
  get inFlight(): number {
    this.settle();
    return this.active;
  }

  /** Settles the counted requests that have finished (see `settler`); the counts are exact after it. */
  settle(): void {
    if (this.settler !== undefined) this.settler();
  }

  /** Forget a request that will never finish normally (the adapter lost track of it). */
  abandon(): void {
    this.active = this.active > 0 ? this.active - 1 : 0;
  }

  /**
   * The stats of a route, made on first sight; past `maxRoutes`, the method's overflow bucket.
   * Each call that lands in the overflow bucket counts one request in `overflowed`, unless
   * `request` is false (a lookup that records no request).
   */
  routeFor(method: string, route: string, request = true): RouteStats {
    const known = this.index.get(method)?.get(route);
    if (known !== undefined) return known;
    const key = method + ' ' + route;
    let stats = this.routes.get(key);
    if (stats !== undefined) return stats;
    if (this.routes.size >= this.maxRoutes && route !== UNMATCHED) {
      if (request) this.overflowed++;
      const okey = method + ' ' + OVERFLOW;
      stats = this.routes.get(okey);
      if (stats !== undefined) return stats;
      route = OVERFLOW;
    }
    // Unmatched and overflow buckets may exceed maxRoutes by one per HTTP method, which is bounded.
    stats = new RouteStats(method + ' ' + route, method, route, this.historySize, performance.now());
    this.routes.set(stats.key, stats);
    // Only real table entries are indexed (never the raw names that fell into the overflow
    // bucket), so the index is bounded by the table; `routes` and `index` change only here.
    let byRoute = this.index.get(method);
    if (byRoute === undefined) { byRoute = new Map(); this.index.set(method, byRoute); }
    byRoute.set(route, stats);
    return stats;
  }

  private sampleObjects(stats: RouteStats, before: string[], globals0: number): void {
    stats.sampled++;
    const after = process.getActiveResourcesInfo();
    if (after.length !== before.length) {
      const counts = new Map<string, number>();
      for (const t of after) counts.set(t, (counts.get(t) ?? 0) + 1);
      for (const t of before) counts.set(t, (counts.get(t) ?? 0) - 1);
      for (const [t, d] of counts) {
        if (d === 0) continue;
        if (!stats.resourceDelta.has(t) && stats.resourceDelta.size >= RESOURCE_TYPES_PER_ROUTE) continue;
        stats.resourceDelta.set(t, (stats.resourceDelta.get(t) ?? 0) + d);
      }
    }
    if (globals0 < 0) return;
    // The full scan (getOwnPropertyNames, 6–15 µs) runs only when the cheap count moved.
    const count = enumerableGlobalCount();
    const moved = count !== this.enumerableGlobals;
    this.enumerableGlobals = count;
    if (!moved) return;
    const names = globalNames();
    if (names.length > this.globalCount) {
      // Only globals that appeared while this request ran are charged to its route; ones that
      // appeared between samples are still learned (and listed process-wide) but not attributed.
      const duringThis = count > globals0;
      for (const name of names) {
        if (this.knownGlobals.has(name)) continue;
        this.knownGlobals.add(name);
        if (duringThis && stats.globalsAdded.length < GLOBALS_PER_ROUTE) stats.globalsAdded.push(name);
      }
    }
    this.globalCount = names.length;
  }

  private capture(stats: RouteStats, req: IncomingMessage, body: unknown, at: number): void {
    // Keyed reads: Express's req has a new hidden class on every request (prop.ts).
    const headers = prop<IncomingMessage['headers']>(req, 'headers');
    // The header lookup (a dictionary-mode object) only when there is a body to keep.
    const keepBody = body !== undefined && Number(headers['content-length'] ?? 0) <= this.captureBodyLimit;
    const url = prop<string | undefined>(req, 'originalUrl') ?? prop<string | undefined>(req, 'url') ?? '/';
    const method = prop<string | undefined>(req, 'method') ?? 'GET';
    // Where the probe replays it: the socket's local end (Node caches getsockname per socket).
    const sock = prop<(IncomingMessage['socket'] & { encrypted?: boolean }) | undefined>(req, 'socket');
    // Express leaves the matched Route on req.route: the probe lists its handlers' closures.
    const handlerRef = prop(req, 'route');
    const last = stats.lastRequest;
    if (last === undefined) {
      stats.lastRequest = {
        method, url, headers, body: keepBody ? body : undefined, at,
        localPort: sock?.localPort, localAddress: sock?.localAddress, tls: sock?.encrypted === true, handlerRef,
      };
    } else {
      last.method = method;
      last.url = url;
      last.headers = headers;
      last.body = keepBody ? body : undefined;
      last.at = at;
      last.localPort = sock?.localPort;
      last.localAddress = sock?.localAddress;
      last.tls = sock?.encrypted === true;
      last.handlerRef = handlerRef;
    }
  }
}
