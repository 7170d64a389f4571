import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import { executionAsyncResource } from 'node:async_hooks';
import { resolveOptions } from './options';
import { Recorder, type RequestState, type RouteStats } from './recorder';
import { Gate } from './gate';
import { gcWatch } from './gcwatch';
import { Router, handleError } from './http/router';
import { sendError } from './http/respond';
import { isLoopbackAddress, isLocalHostHeader } from './net';
import { installApi } from './http/api';
import { installDetector } from './detector';
import { installProber } from './probe/index';
import { installMetrics } from './metrics/index';
import { installDashboard } from './dashboard/index';
import type { LeakwatchOptions, ProcessFindings, ResolvedOptions } from './types';
import type { Attribution } from './attribution';

/** Something that lives as long as the monitor: a detector, the prober, metrics, the dashboard. */
export interface Feature {
  close?(): void;
}

/** Header that marks leakwatch's own replayed requests, so that they pass the gate and are not recorded. */
export const PROBE_HEADER = 'x-leakwatch-probe';

/**
 * The framework-free heart of leakwatch: the recorder, the isolation gate, leakwatch's own HTTP
 * endpoints and every feature built on them. The Express and Fastify adapters only translate
 * their request lifecycle into `start()` / `finish()` / `handle()`.
 *
 * @example
 * ```js
 * const { createMonitor } = require('leakwatch');
 * const monitor = createMonitor({ path: '/__leaks' });
 * // in a plain http server:
 * http.createServer((req, res) => {
 *   if (monitor.isOwnPath(req.url)) return monitor.handle(req, res);
 *   const state = monitor.start();
 *   res.on('finish', () => monitor.finish(state, req.method, '/hello', res.statusCode, false, req));
 *   res.end('hi');
 * });
 * ```
 */
export class LeakMonitor {
  readonly options: ResolvedOptions;
  readonly recorder: Recorder;
  readonly gate = new Gate();
  readonly router: Router;
  /** Random per process: proves a form POST came from a page we rendered. */
  readonly formToken = randomBytes(16).toString('hex');
  /** Random per process: marks the probe's own replayed requests. */
  readonly probeToken = randomBytes(16).toString('hex');
  readonly features: Record<string, Feature> = {};
  /**
   * Per-route trampolines for the sampling heap profiler, set by the detector while the profiler
   * runs (undefined when `samplingInterval` is 0 or the profiler is unavailable). Adapters call
   * `attribution.wrap` on a route's handlers when its first request finishes.
   */
  attribution: Attribution | undefined;
  /** Written by the detector; read by the API, the dashboard and the metrics. */
  readonly processFindings: ProcessFindings = {
    liveHeapBytes: null, liveExternalBytes: null, liveAt: null, heapGrowthBytesPerSecond: null,
    externalGrowthBytesPerSecond: null, rssGrowthBytesPerSecond: null, secondsToHeapLimit: null,
    nativeGrowth: false, checkpoints: 0, history: [],
    load: { active: false, since: null, requestsPerSecond: 0, episodes: 0 },
    calm: { active: false, since: null, episodes: 0, reason: null, nudges: 0 },
  };
  /**
   * Dev mode: the Fastify adapter hands over each finished request's reply (`holdLast`), kept
   * until the next one finishes, and while its recorder is light the last counted one as well (see
   * `lastCounted`; the Express adapter holds neither: see there). A checkpoint lets every
   * request finish before its forced full GC, so without this no request, response or framework
   * wrapper is alive at that GC; V8 then drops the hidden classes only they used, and deoptimizes
   * every function compiled against them ("weak objects"). Measured on Fastify at 2,000 req/s:
   * 606 such deoptimizations in 8 s and 4× the JIT recompilations; holding one request's objects
   * cut them to 81 and the CPU that dev mode adds per request by about 60%. Costs one request's
   * objects, for one request longer.
   */
  readonly holdsLast: boolean;
  private last: unknown = undefined;
  /**
   * Dev mode, while the recorder is light (under load, in the calm): the last request the Fastify
   * adapter only counted, held beside the last timed one. A timed request's raw response carries
   * our state symbol and a 'close' listener, a counted one neither, so the two have different
   * hidden classes and the app's hot functions are compiled against both. With only the timed one
   * held, each of the calm's checkpoints deoptimized about 20 of them ("weak objects": writeHead,
   * _storeHeader, _finish, emitCloseNT, ...) and V8 spent the next 20-30 s recompiling them; with
   * both held, 2-6, the ones bare Fastify also loses to a forced GC (Node's write requests).
   */
  private lastCounted: unknown = undefined;
  /**
   * Dev mode: one `process.nextTick()` queue entry, held for the monitor's life. Node builds each
   * entry from an object literal whose keys are computed (`{ [async_id_symbol]: … }`), and the hidden
   * classes of such a literal live only as long as some entry does. A checkpoint forces its full
   * GC when no request is in flight, so no entry is alive then: V8 drops those classes, the
   * literal's feedback goes megamorphic after a few checkpoints, and from then on every
   * `process.nextTick()` in the process defines its four properties through the runtime, for
   * good (measured on bare Fastify with a forced GC every 200 ms for 3 s of traffic: 187 ns per
   * `nextTick` seconds after the last GC, against 25 ns without the GCs and 25 ns with one entry
   * held; Node's HTTP path calls it about 7 times per request). One small object keeps them.
   */
  private tickEntry: unknown = undefined;
  private readonly prefixSlash: string;
  private faultLogged = false;
  faults = 0;
  closed = false;

  constructor(options?: LeakwatchOptions) {
    this.options = resolveOptions(options);
    const o = this.options;
    this.prefixSlash = o.path + '/';
    this.holdsLast = o.enabled && o.mode === 'dev';
    if (this.holdsLast) {
      process.nextTick(() => {
        // Inside a tick callback, the current async resource is its queue entry.
        try { if (!this.closed) this.tickEntry = executionAsyncResource(); } catch (e) { this.fault(e); }
      });
    }
    // Production mode reads heap deltas on sampled requests only: they are informational there
    // (no per-request analysis uses them) and they were most of the per-request cost.
    this.recorder = new Recorder(o.maxRoutes, o.historySize, o.sampleEvery, o.captureBodyLimit, o.mode === 'production');
    this.router = new Router(this.formToken);
    if (o.enabled) {
      gcWatch.acquire();
      // Each feature registers its endpoints on the router and its closer in `features`.
      // The dashboard goes last: its catch-all page routes must not shadow the API.
      try {
        installApi(this);
        installDetector(this);
        installProber(this);
        installMetrics(this);
        installDashboard(this);
      } catch (e) {
        // A setup error (e.g. metrics already registered on the user's registry) must not leave
        // the timers and observers of the features installed before it running.
        this.close();
        throw e;
      }
    }
  }

  /** True for the mount point and everything under it. Cheap: called on every request. */
  isOwnPath(url: string | undefined): boolean {
    const p = this.options.path;
    // The path is at least two characters and starts with '/': comparing the second first turns
    // nearly every app request away without a startsWith call (~130 instructions per request under
    // callgrind).
    if (url === undefined || url.charCodeAt(1) !== p.charCodeAt(1) || !url.startsWith(p)) return false;
    const c = url.charCodeAt(p.length);
    // end of string, '/', '?' or '#'
    return Number.isNaN(c) || c === 47 || c === 63 || c === 35;
  }

  /** True for leakwatch's own replayed requests (probe traffic). */
  isProbeRequest(req: IncomingMessage): boolean {
    return req.headers[PROBE_HEADER] === this.probeToken;
  }

  /**
   * Called when a request arrives. Returns undefined if recording failed or the monitor is closed:
   * the host app goes on. `sample: true` makes this one of the sampled requests (heap delta,
   * resources, replay sample), for an adapter that picks them itself; by default one request in
   * `sampleEvery` is.
   */
  start(sample?: boolean): RequestState | undefined {
    // Closed: finish() records nothing, so a request started now would stay in flight.
    if (this.closed) return undefined;
    const inFlight = this.recorder.active;
    try {
      return this.recorder.start(sample);
    } catch (e) {
      // Counted in but never to be counted out: undo, or checkpoints and probes wait forever
      // for in-flight requests to drain.
      if (this.recorder.active > inFlight) this.recorder.abandon();
      this.fault(e);
      return undefined;
    }
  }

  /**
   * Called once the response is finished (or the client went away). Never throws. `bodyOf(req)`,
   * when given instead of `body`, is called only when the request is kept as a replay sample.
   */
  finish(state: RequestState | undefined, method: string, route: string, status: number, aborted: boolean, req?: IncomingMessage, body?: unknown, bodyOf?: (req: IncomingMessage) => unknown): RouteStats | undefined {
    if (state === undefined || this.closed) return undefined;
    const inFlight = this.recorder.active;
    try {
      return this.recorder.finish(state, method, route, status, aborted, req, body, bodyOf);
    } catch (e) {
      // A finish that failed before counting the request out would leave inFlight high for good.
      if (inFlight > 0 && this.recorder.active === inFlight) this.recorder.abandon();
      this.fault(e);
      return undefined;
    }
  }

  /**
   * Dev mode: keep this request's objects (whatever `held` reaches) alive until the next request
   * of its kind finishes (see `holdsLast`); `counted` for one the recorder only counts (see
   * `lastCounted`). `undefined` lets go of both.
   */
  holdLast(held: unknown, counted = false): void {
    if (held === undefined) { this.last = undefined; this.lastCounted = undefined; } else if (counted) this.lastCounted = held; else this.last = held;
  }

  /** Logs leakwatch's own faults once: the host app must never see them. */
  fault(e: unknown): void {
    this.faults++;
    if (this.faultLogged) return;
    this.faultLogged = true;
    try {
      this.options.logger.warn(`leakwatch: internal fault, the app is unaffected (logged once): ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
    } catch { /* a broken logger must not break the app either */ }
  }

  /**
   * Serves `{path}` and everything below it. `clientIp` is the framework's view of the client
   * (which honours its own trust-proxy setting); `body` is a body a framework already parsed;
   * `base` is the concrete path the adapter itself is mounted under (Express sub-routers).
   */
  async handle(req: IncomingMessage, res: ServerResponse, opts: { clientIp?: string; body?: unknown; base?: string } = {}): Promise<void> {
    try {
      // Every page and API answer reads counts: the counted requests that finished on idle
      // connections are settled first (core/counted.ts).
      this.recorder.settle();
      let allowed: unknown;
      if (this.options.authorizeIsDefault) {
        allowed = isLoopbackAddress(opts.clientIp ?? req.socket?.remoteAddress);
        if (allowed === true && !isLocalHostHeader(req.headers.host)) {
          sendError(res, 403, `leakwatch is open to loopback clients only, addressed as localhost or by IP; Host ${JSON.stringify(String(req.headers.host).slice(0, 100))} is refused (DNS rebinding, or a reverse proxy on this machine); pass an authorize(req) option to allow it`);
          return;
        }
      } else {
        // A user's authorize() that throws or rejects refuses (fails closed) instead of a 500.
        try { allowed = await this.options.authorize(req); } catch (e) { this.fault(e); allowed = false; }
      }
      if (allowed !== true) {
        sendError(res, 403, this.options.authorizeIsDefault
          ? 'leakwatch is open to loopback clients only; pass an authorize(req) option to allow others'
          : 'not authorized by the authorize option');
        return;
      }
      const raw = req.url ?? '/';
      const q = raw.indexOf('?');
      const pathname = q < 0 ? raw : raw.slice(0, q);
      let subpath = pathname.slice(this.options.path.length);
      if (subpath === '') subpath = '/';
      let decoded: string;
      try { decoded = decodeURIComponent(subpath); } catch {
        sendError(res, 400, 'malformed percent-encoding in the URL');
        return;
      }
      await this.router.dispatch(req, res, decoded, new URLSearchParams(q < 0 ? '' : raw.slice(q + 1)), opts.body, (opts.base ?? '') + this.options.path);
    } catch (e) {
      try { handleError(res, e, (err) => this.fault(err)); } catch { /* the socket may be gone */ }
    }
  }

  /** A route's stats by method and template. */
  route(method: string, route: string): RouteStats | undefined {
    this.recorder.settle();
    return this.recorder.routes.get(method.toUpperCase() + ' ' + route);
  }

  /** Stops every timer, observer and inspector session. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.holdLast(undefined);
    this.tickEntry = undefined;
    this.gate.dispose();
    for (const f of Object.values(this.features)) {
      try { f.close?.(); } catch (e) { this.fault(e); }
    }
    if (this.options.enabled) gcWatch.release();
  }
}

/**
 * Creates a monitor for a custom integration (plain `http`, another framework). The Express and
 * Fastify adapters create one for you.
 *
 * @example
 * ```js
 * const { createMonitor } = require('leakwatch');
 * const monitor = createMonitor({ maxRoutes: 100 });
 * ```
 */
export function createMonitor(options?: LeakwatchOptions): LeakMonitor {
  return new LeakMonitor(options);
}
