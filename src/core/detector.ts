import v8 from 'node:v8';
import type { LeakMonitor } from './monitor';
import type { RouteStats } from './recorder';
import { forceFullGc, liveDataHeap } from './gc';
import { gcWatch, oldGenBytes, type GcEvent } from './gcwatch';
import { analyzeWindow, type CheckpointWindow, type WindowAnalysis } from './analysis/checkpoints';
import { fitLine } from './analysis/regression';
import { project, secondsToLimit } from './analysis/projection';
import { DEFAULT_RULES, decideVerdict } from './analysis/verdict';
import { summarizeIsolated } from './analysis/isolated';
import { checkpointGaps, measureAftermath } from './analysis/budget';
import { CALM_RULES, calmAftermath, calmNudge, calmSlack, mib, quietAnalysis, settleNudge, startNudge, stepCalm, type CalmRoute, type CalmState, type NudgeState } from './analysis/calm';
import { dataDependence } from './analysis/sampled';
import { heapSampler } from './heapsampler';
import { Attribution } from './attribution';
import { performance } from 'node:perf_hooks';
import { flat } from './flat';

/** Checkpoints kept for the regression: a sliding window, so old warm-up falls out of it. */
export const WINDOW = 64;
/** Live-heap history kept for /api/process (bounded). */
const HISTORY = 120;
/** Object-count series tracked besides the heap (globals, active-resource types, listener counts). */
const OBJECT_SERIES = 14;
/** Emitters whose listener count is followed after a MaxListenersExceededWarning. */
const WARNED_EMITTERS = 4;
/** Longest the gate is closed for one checkpoint, and longest we wait for in-flight requests. */
const GATE_MAX_MS = 400;
const DRAIN_MAX_MS = 200;
/** Dev mode: a checkpoint is due after this many requests (if the time budget allows). */
const REQUESTS_PER_CHECKPOINT = 100;
const TICK_MS = 25;
/**
 * While the load guard is engaged the tick only watches the rate, so it slows down: each tick is
 * an event-loop wake-up (under callgrind, which stretches wall time ~50×, 25 ms ticks cost Fastify
 * ~30,000 instructions per request at 50 req/s).
 */
const LOAD_TICK_MS = 250;
/**
 * In the calm, once the next checkpoint is seconds away: a wake-up a second still watches the
 * rate (the load guard's windows are a second long) and takes the aftermath reading on time.
 */
const CALM_TICK_MS = 1000;
/** No request for this long after a checkpoint: the tick slows to LOAD_TICK_MS until one comes. */
const IDLE_MS = 1000;
/** Dev mode's load guard: the request rate is measured over windows this long. */
const RATE_WINDOW_MS = 1000;
/** And the guard lets go once the rate falls to this share of `loadRate` (hysteresis). */
const LOAD_EXIT = 0.8;
/**
 * The aftermath of a checkpoint is measured over this long after it (against the rest of the gap
 * to the next one): on Express at 200 req/s the extra CPU per request faded out within ~3 s.
 */
const AFTERMATH_MS = 3000;
/** Weight of the newest measurement in the aftermath's moving average. */
const AFTERMATH_EWMA = 0.3;
/**
 * The largest factor one measurement may add. A gap whose traffic changed its mix mid-way reads
 * whatever the mix made of it (Express's checkpoints measured 1.8–4.4 at a steady 200 req/s).
 */
const AFTERMATH_MAX = 6;
/** Dev mode: the sampling profile is read at one checkpoint in this many. */
const PROFILE_EVERY = 2;
/** Isolated samples: at most this many per checkpoint, ms per checkpoint, ms to wait for one request. */
const ISOLATE_MAX_SAMPLES = 12;
const ISOLATE_WAIT_MS = 25;
/** Isolated samples kept per route, and routes followed. */
const ISOLATE_RING = 128;
const ISOLATE_ROUTES = 64;
/**
 * A route reads `growing` only after this many consecutive analyses said so. On the zoo, single
 * analyses during JIT warm-up sometimes pinned another route's leak on a control (a no-op route
 * read +2 KB/request for a dozen checkpoints); three in a row removed every such case we recorded.
 */
export const CONFIRM = 3;

const NO_READINGS: number[] = [];

function cpuNowMs(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1000;
}

interface Point {
  at: number;
  heap: number;
  /** All memory V8 tracks outside its heap (Buffers, external strings, addons' reports). */
  external: number;
  /** The ArrayBuffer/Buffer part of it: the steadier series, so the per-route regression uses it. */
  arrayBuffers: number;
  rss: number;
  held: number;
  forced: boolean;
  /** The sampling profiler's run (it restarts after a load episode; levels of two runs differ). */
  run: number;
}

/**
 * The stateful half of detection: takes checkpoints, keeps fixed-size windows, runs the pure
 * analysis (src/core/analysis) and writes verdicts, estimates and findings into each RouteStats
 * and into `monitor.processFindings`.
 *
 * Dev mode: a checkpoint closes the gate, waits for in-flight requests to finish, forces a full
 * GC, reads live heap, external memory and per-route request counts, and reopens the gate. It is
 * due every ~100 requests, or every `checkpointIntervalMs` while there is traffic, no more often
 * than its budgets allow (analysis/budget.ts: shares of wall time, of a core, and `cpuBudget`
 * times the app's own CPU).
 * Production mode: never forces a GC; each natural mark-compact GC is a checkpoint.
 */
export class Detector {
  private readonly routeIndex = new Map<string, number>();
  private readonly routeStats: RouteStats[] = [];
  /**
   * Route r's ring of cumulative request counts is counts[r * WINDOW … (r + 1) * WINDOW), aligned
   * with `points`. 32-bit (a route would need 4 billion requests), and one buffer for all routes,
   * grown by doubling: an ArrayBuffer of its own per route cost ~180 B of headers beside its 256 B
   * of counts (bench:memory, 1,000 routes).
   */
  private counts = new Uint32Array(16 * WINDOW);
  /**
   * sampled[route]: live bytes the heap profiler charged to the route (NaN: no reading). Allocated
   * only for routes with a trampoline (at most MAX_TRAMPOLINES), so a table of 1,000 routes does
   * not carry 1,000 of them (bench:memory).
   */
  private readonly sampled: Array<Float64Array | undefined> = [];
  /** The sampling interval while this detector holds the profiler, else 0. */
  private samplingInterval = 0;
  /** Whether this detector holds the profiler now (it lets go while under load), and its run. */
  private samplerHeld = false;
  private samplerRun = 0;
  /** The load guard's rate window, and the last tick's count (the short view of the rate). */
  private rateAt = 0;
  private rateTotal = 0;
  private tickAt = 0;
  private tickTotal = 0;
  /** ms spent reading sampling profiles, and in the last checkpoint. */
  profileMs = 0;
  private lastProfileMs = 0;
  /** Checkpoints since the profile was last read. */
  private sinceProfile = Infinity;
  /** Dev mode's calm (analysis/calm.ts): everything judged is stable, so the detector steps back. */
  private readonly calm: CalmState = { active: false, quiet: 0, lowHeap: 0, lowArrayBuffers: 0 };
  /** The checkpoint count when each route was first seen (a young route keeps the full pace). */
  private readonly firstSeen: number[] = [];
  /** Routes in the table when the calm began: a new one ends it at once (it has not been judged). */
  private calmRoutes = 0;
  /** What the app's own GCs said in the calm (analysis/calm.ts calmNudge), and whether they nudged since the last checkpoint. */
  private nudge: NudgeState = startNudge(0, 0);
  private nudged = false;
  /** The last checkpoint's forced reading, as the app's GC events read it (oldGenBytes) and external memory. */
  private forcedOld = 0;
  private forcedExternal = 0;
  /** Live heap the fit over the recent half of the window says was added across it, bytes. */
  private recentRise = 0;
  /** The same for external memory. */
  private recentExternalRise = 0;
  /** Consecutive analyses that found each route growing. */
  private readonly streak: number[] = [];
  private readonly points: Point[] = [];
  private readonly objectNames: string[] = [];
  private readonly objects: Float64Array[] = [];
  /** Emitters Node warned about (weakly held: the detector must not keep them alive). */
  private readonly warned: Array<{ name: string; type: string | symbol; emitter: WeakRef<{ listenerCount(t: unknown): number }> }> = [];
  private readonly warningListener = (w: Error): void => { try { this.onWarning(w); } catch (e) { this.monitor.fault(e); } };
  private head = 0;
  private size = 0;
  private timer: NodeJS.Timeout | undefined;
  private offGc: (() => void) | undefined;
  private busy = false;
  private lastAt = 0;
  private lastTotal = 0;
  private lastCostMs = 0;
  private lastCpuMs = 0;
  /** Process CPU time (ms) when the last checkpoint ended: what the app used since is measured from it. */
  private cpuEndMs = 0;
  /**
   * What a checkpoint's own CPU really costs this process, as a factor (analysis/budget.ts
   * measureAftermath; a moving average), once a gap was long enough to measure it.
   */
  aftermath: number | undefined = undefined;
  /** When the last checkpoint ended, with the request count then; and the reading AFTERMATH_MS later. */
  private endAt = 0;
  private endTotal = 0;
  private markDue = false;
  private mark: { cpu: number; total: number } | undefined;
  /** Load episodes and calm changes when the last checkpoint ended: a gap with either is not measured. */
  private endEpisodes = 0;
  private calmChanges = 0;
  private endCalmChanges = 0;
  /** The tick's current period. */
  private tickMs = 0;
  /** Checkpoints taken, skipped (could not drain in time), and ms spent in them. */
  taken = 0;
  skipped = 0;
  costMs = 0;
  /** Of which: waiting for in-flight requests, and the forced GCs themselves. */
  drainMs = 0;
  gcMs = 0;
  analyzeMs = 0;
  /** Figures of the last analysis (the analysis itself is not kept: it holds every route's evidence). */
  last: { checkpoints: number; heapScale: number; dropped: number } | undefined;
  /** Isolated samples taken, and chains cut short by a request that did not finish in time. */
  isolatedSamples = 0;
  isolateTimeouts = 0;
  isolateEmpty = 0;
  /** Per-route rings of isolated samples (bounded: ISOLATE_ROUTES routes × ISOLATE_RING). */
  private readonly isolated = new Map<RouteStats, { heap: Float64Array; ext: Float64Array; arrivals: Float64Array; n: number }>();
  /**
   * Sampled isolation (see `isolate`): ms per checkpoint spent running single requests alone
   * between forced GCs. 0 (the default) turns it off. Measured on the zoo on a loaded 2-core VM,
   * forced GCs cost 30–90 ms each, so the extra GCs cost a third of the checkpoints (38 → 27 in
   * 5,000 requests) for about 70 samples, of which only ~1 in 6 was clean (a replacement request
   * arrived in time): a net loss there. On a quiet machine (3.5 ms GCs) it may pay; set it on
   * `monitor.features.detector` to try.
   */
  isolateBudgetMs = 0;
  private closed = false;

  constructor(private readonly monitor: LeakMonitor) {}

  start(): void {
    // Listening does not silence Node's own printing of the warning.
    process.on('warning', this.warningListener);
    const o = this.monitor.options;
    if (o.samplingInterval > 0 && heapSampler.acquire(o.samplingInterval)) {
      this.samplingInterval = heapSampler.interval;
      this.samplerHeld = true;
      this.monitor.attribution = new Attribution(o.maxRoutes);
    }
    if (this.monitor.options.mode === 'dev') {
      this.rateAt = performance.now();
      this.schedule(TICK_MS);
      if (this.monitor.options.calmBudget !== Infinity) this.offGc = gcWatch.on((e) => this.onCalmGc(e));
    } else {
      this.offGc = gcWatch.on((e) => this.onGc(e));
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.offGc?.();
    this.offGc = undefined;
    process.off('warning', this.warningListener);
    if (this.samplingInterval > 0) {
      this.monitor.attribution?.close();
      this.monitor.attribution = undefined;
      if (this.samplerHeld) heapSampler.release();
      this.samplerHeld = false;
      this.samplingInterval = 0;
    }
    this.monitor.processFindings.load.active = false;
  }

  private schedule(ms: number): void {
    if (this.timer) clearInterval(this.timer);
    this.tickMs = ms;
    // Never throw into the host's event loop.
    this.timer = setInterval(() => { try { this.tick(); } catch (e) { this.monitor.fault(e); } }, ms);
    this.timer.unref();
  }

  /**
   * Ticks are event-loop wake-ups: at a developer's pace 40 a second were a few percent of a
   * cheap app's CPU. So the tick slows down while nothing can be due soon (no traffic, or the
   * budget's next checkpoint is seconds away), and speeds up when one may be.
   */
  private pace(ms: number): void {
    if (this.tickMs !== ms && !this.closed) this.schedule(ms);
  }

  /**
   * Dev mode's load guard. Forced checkpoints cost far more under load than their own time: each
   * full GC drops code the app's hot paths were compiled against, and V8 recompiles it (measured
   * at 2,000 req/s, bench:overhead: dev mode added +123% to +359% CPU per request without this
   * guard, +6% to +22% with it). A developer's clicks and a demo's traffic run at tens to hundreds
   * of requests per second; a load test at hundreds or thousands. Above `loadRate` the detector
   * steps back: no checkpoint, and the profiler stops (it costs a stack walk per sample). The
   * first checkpoint after the load charges everything the load kept to the routes it ran,
   * through their request counts.
   */
  private watchLoad(now: number): void {
    const dt = now - this.rateAt;
    if (dt < RATE_WINDOW_MS) return;
    const total = this.monitor.recorder.totalRequests;
    const rate = ((total - this.rateTotal) * 1000) / dt;
    this.rateAt = now;
    this.rateTotal = total;
    const load = this.monitor.processFindings.load;
    load.requestsPerSecond = rate;
    const limit = this.monitor.options.loadRate;
    if (limit <= 0) return;
    if (!load.active && rate > limit) {
      load.active = true;
      load.since = Date.now();
      load.episodes++;
      this.stepBack();
      this.schedule(LOAD_TICK_MS);
    } else if (load.active && rate <= limit * LOAD_EXIT) {
      load.active = false;
      load.since = null;
      this.stepBack();
      this.schedule(TICK_MS);
    }
  }

  /**
   * Under load and in the calm the detector steps back: the profiler stops (a stack walk per
   * sample, on every allocation-heavy request) and per-request heap deltas are read on sampled
   * requests only. Otherwise both run as configured.
   */
  private stepBack(): void {
    const back = this.monitor.processFindings.load.active || this.calm.active;
    this.monitor.recorder.light(back);
    if (back) {
      if (this.samplerHeld) { heapSampler.release(); this.samplerHeld = false; }
    } else if (this.samplingInterval > 0 && !this.samplerHeld && !this.closed) {
      // A fresh run: its levels start from nothing, so the analysis must not compare them with
      // the last run's (see SampledOptions.runs).
      if (heapSampler.acquire(this.samplingInterval)) { this.samplerHeld = true; this.samplerRun++; }
    }
  }

  private tick(): void {
    if (this.busy || this.closed) return;
    const now = performance.now();
    if (this.markDue && now - this.endAt >= AFTERMATH_MS) {
      this.markDue = false;
      this.mark = { cpu: cpuNowMs(), total: this.monitor.recorder.totalRequests };
    }
    this.watchLoad(now);
    if (this.monitor.processFindings.load.active) return;
    const rec = this.monitor.recorder;
    // A route first seen in the calm has never been judged: watch it at full pace now rather
    // than at the calm's next checkpoint, which may be half a minute away.
    if (this.calm.active && rec.routes.size > this.calmRoutes) {
      let key = '';
      for (const s of rec.routes.values()) key = s.key;
      this.leaveCalm(`a new route appeared (${key})`);
    }
    const since = rec.totalRequests - this.lastTotal;
    const elapsed = now - this.lastAt;
    if (since === 0) { if (elapsed > IDLE_MS) this.pace(LOAD_TICK_MS); return; }
    // A load test may have begun before the guard's one-second window can judge it: when the
    // requests since the last tick already came faster than loadRate, wait for the window rather
    // than force a GC into the first second of the load.
    const limit = this.monitor.options.loadRate;
    const recent = ((rec.totalRequests - this.tickTotal) * 1000) / Math.max(now - this.tickAt, TICK_MS);
    this.tickAt = now;
    this.tickTotal = rec.totalRequests;
    if (limit > 0 && recent > limit) return;
    const interval = this.monitor.options.checkpointIntervalMs;
    if (since < REQUESTS_PER_CHECKPOINT && elapsed < interval) { this.pace(TICK_MS); return; }
    const o = this.monitor.options;
    // A nudge (growth read by the app's own GCs) brings the calm's next checkpoint forward: it is
    // spaced as at full pace.
    const calmPace = this.calm.active && !this.nudged;
    const budget = calmPace ? Math.min(o.cpuBudget, o.calmBudget) : o.cpuBudget;
    const gaps = checkpointGaps({
      lastCostMs: this.lastCostMs, lastCpuMs: this.lastCpuMs, lastProfileMs: this.lastProfileMs,
      elapsedMs: elapsed, cpuSinceMs: budget === Infinity ? 0 : cpuNowMs() - this.cpuEndMs, cpuBudget: budget,
      aftermath: calmPace ? calmAftermath(this.aftermath) : this.aftermath,
    });
    // `checkpointIntervalMs` overrides the fixed budgets (as it always did), never `cpuBudget`.
    const wait = Math.max(gaps.app - elapsed, elapsed >= interval ? 0 : Math.min(gaps.fixed, interval) - elapsed);
    if (wait > 0) { this.pace(wait <= 4 * LOAD_TICK_MS ? TICK_MS : this.calm.active && wait > 4 * CALM_TICK_MS ? CALM_TICK_MS : LOAD_TICK_MS); return; }
    this.pace(TICK_MS);
    this.busy = true;
    this.checkpoint().catch((e) => this.monitor.fault(e)).finally(() => { this.busy = false; });
  }

  /** One quiescent checkpoint. Public so tests and the bench can force one. */
  async checkpoint(): Promise<boolean> {
    const m = this.monitor;
    this.learnAftermath();
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    this.lastProfileMs = 0;
    const token = m.gate.close(GATE_MAX_MS);
    if (token === undefined) return false; // someone else (a probe) holds the gate
    let drained = false;
    try {
      for (let spins = 0; ; spins++) {
        if (m.recorder.inFlight === 0) { drained = true; break; }
        if (performance.now() - t0 > DRAIN_MAX_MS || this.closed) break;
        await new Promise<void>((r) => (spins < 20 ? setImmediate(r) : setTimeout(r, 1)));
      }
      if (!drained) { this.skipped++; return false; }
      const g0 = performance.now();
      this.drainMs += g0 - t0;
      forceFullGc();
      this.gcMs += performance.now() - g0;
      const spaces = v8.getHeapSpaceStatistics();
      const heap = liveDataHeap(spaces);
      const mu = process.memoryUsage();
      this.forcedOld = oldGenBytes(spaces);
      this.forcedExternal = mu.external;
      this.record({ at: Date.now(), heap, external: mu.external, arrayBuffers: mu.arrayBuffers, rss: mu.rss, held: m.gate.queued, forced: true, run: this.samplerRun });
      await this.isolate(token, heap, mu.arrayBuffers);
    } finally {
      m.gate.open(token);
      const cost = performance.now() - t0;
      this.lastAt = performance.now();
      this.lastTotal = m.recorder.totalRequests;
      if (drained) { this.lastCostMs = cost; this.costMs += cost; this.taken++; }
    }
    // The analysis runs with the gate open, but it is still our time on the event loop: it counts
    // toward the budget that spaces checkpoints.
    const a0 = performance.now();
    const analysis = this.analyze();
    this.stepCalm(analysis);
    const ams = performance.now() - a0;
    this.analyzeMs += ams;
    this.lastCostMs += ams;
    this.costMs += ams;
    this.cpuEndMs = cpuNowMs();
    this.lastCpuMs = this.cpuEndMs - (cpu0.user + cpu0.system) / 1000;
    this.endAt = performance.now();
    this.endTotal = m.recorder.totalRequests;
    this.endEpisodes = m.processFindings.load.episodes;
    this.endCalmChanges = this.calmChanges;
    this.markDue = true;
    this.mark = undefined;
    return true;
  }

  /**
   * Before a checkpoint: if the gap since the last one was long enough to hold a reading
   * AFTERMATH_MS after it, how much more CPU per request the app used in those first seconds than
   * later on, against that checkpoint's own CPU. Feeds the CPU budgets (analysis/budget.ts).
   */
  private learnAftermath(): void {
    const mark = this.mark;
    this.mark = undefined;
    this.markDue = false;
    // A load (light recording, no profiler) or a calm that began or ended inside the gap changes
    // the app's cost per request for reasons of ours that are not the checkpoint's aftermath.
    const load = this.monitor.processFindings.load;
    if (mark === undefined || load.active || load.episodes !== this.endEpisodes || this.calmChanges !== this.endCalmChanges) return;
    const f = measureAftermath({
      ownCpuMs: this.lastCpuMs - this.lastProfileMs,
      earlyCpuMs: mark.cpu - this.cpuEndMs, earlyRequests: mark.total - this.endTotal,
      lateCpuMs: cpuNowMs() - mark.cpu, lateRequests: this.monitor.recorder.totalRequests - mark.total,
    });
    if (f === undefined) return;
    const g = Math.min(f, AFTERMATH_MAX);
    this.aftermath = this.aftermath === undefined ? g : this.aftermath + AFTERMATH_EWMA * (g - this.aftermath);
  }

  /**
   * Sampled isolation, piggybacked on a checkpoint: the gate is closed and the heap was just
   * collected, so let ONE held request in, wait for it to finish with nothing else running, force
   * a full GC and charge the change in live heap to that request's route. Each reading is the
   * next sample's baseline, so a chain costs one GC per sample. Stops when nobody is held, when a
   * request does not finish quickly (a slow handler must not stall the others), or at the budget.
   */
  private async isolate(token: symbol, heap: number, arrayBuffers: number): Promise<void> {
    const m = this.monitor;
    const rec = m.recorder;
    const budget = this.isolateBudgetMs;
    if (!(budget > 0)) return;
    const i0 = performance.now();
    // The checkpoint's GC blocked the loop: requests that came meanwhile sit unparsed in their
    // sockets. Let them reach the gate, then take a fresh baseline with them held, so that a
    // sample does not count their arrival.
    for (let spins = 0, last = -1, still = 0; still < 3 && performance.now() - i0 < ISOLATE_WAIT_MS && !this.closed; spins++) {
      await new Promise<void>((r) => (spins < 20 ? setImmediate(r) : setTimeout(r, 1)));
      if (m.gate.queued === last) still++; else { still = 0; last = m.gate.queued; }
    }
    if (m.gate.queued === 0 || this.closed) return;
    forceFullGc();
    let base = liveDataHeap();
    let baseAb = process.memoryUsage().arrayBuffers;
    const b0 = performance.now();
    void heap; void arrayBuffers;
    // Held requests are alive: each one that arrives during a sample adds its own objects, and the
    // one let in frees its own. Recorded per sample so the analysis can take that term out.
    let baseQueued = m.gate.queued;
    for (let k = 0; k < ISOLATE_MAX_SAMPLES && !this.closed; k++) {
      const s0 = performance.now();
      if (s0 - b0 > budget || m.gate.remainingMs() < 2 * ISOLATE_WAIT_MS) break;
      const before = new Map<RouteStats, number>();
      for (const st of rec.routes.values()) before.set(st, st.requests);
      const total0 = rec.totalRequests;
      // The forced GC blocked the loop: requests that came meanwhile sit unparsed in their sockets
      // until we yield, so give them a moment to reach the gate.
      for (let spins = 0; m.gate.queued === 0 && performance.now() - s0 < ISOLATE_WAIT_MS && !this.closed; spins++) {
        await new Promise<void>((r) => (spins < 50 ? setImmediate(r) : setTimeout(r, 1)));
      }
      if (!m.gate.admitOne(token)) { this.isolateEmpty++; break; }
      let done = false;
      for (let spins = 0; ; spins++) {
        // inFlight first: reading it settles a counted request (Fastify, in the calm), which
        // only then shows in totalRequests.
        if (rec.inFlight === 0 && rec.totalRequests > total0) { done = true; break; }
        if (performance.now() - s0 > ISOLATE_WAIT_MS || this.closed) break;
        await new Promise<void>((r) => (spins < 50 ? setImmediate(r) : setTimeout(r, 1)));
      }
      if (!done) { this.isolateTimeouts++; break; }
      // A keep-alive client usually sends its next request at once: give it a moment to take the
      // released one's place, so the held set is the same at both readings (arrivals === 1).
      for (let spins = 0; m.gate.queued < baseQueued && performance.now() - s0 < ISOLATE_WAIT_MS && !this.closed; spins++) {
        await new Promise<void>((r) => (spins < 20 ? setImmediate(r) : setTimeout(r, 1)));
      }
      let route: RouteStats | undefined;
      let finished = 0;
      for (const st of rec.routes.values()) {
        const d = st.requests - (before.get(st) ?? 0);
        if (d > 0) { route = st; finished += d; }
      }
      const g0 = performance.now();
      forceFullGc();
      this.gcMs += performance.now() - g0;
      const h = liveDataHeap();
      const ab = process.memoryUsage().arrayBuffers;
      // Exactly one request ran: otherwise the reading is still the next baseline, but no sample.
      if (route !== undefined && finished === 1) {
        this.addSample(route, h - base, ab - baseAb, m.gate.queued - (baseQueued - 1));
      }
      base = h;
      baseAb = ab;
      baseQueued = m.gate.queued;
    }
  }

  private addSample(stats: RouteStats, heap: number, ext: number, arrivals: number): void {
    let s = this.isolated.get(stats);
    if (s === undefined) {
      if (this.isolated.size >= ISOLATE_ROUTES) return;
      s = { heap: new Float64Array(ISOLATE_RING), ext: new Float64Array(ISOLATE_RING), arrivals: new Float64Array(ISOLATE_RING), n: 0 };
      this.isolated.set(stats, s);
    }
    const i = s.n % ISOLATE_RING;
    s.heap[i] = heap;
    s.ext[i] = ext;
    s.arrivals[i] = arrivals;
    s.n++;
    this.isolatedSamples++;
  }

  /** Isolated samples of one route, oldest first (for the analysis, benchmarks and debugging). */
  samplesOf(stats: RouteStats): { heap: number[]; ext: number[]; arrivals: number[]; total: number } {
    const s = this.isolated.get(stats);
    if (s === undefined) return { heap: [], ext: [], arrivals: [], total: 0 };
    const k = Math.min(s.n, ISOLATE_RING);
    const start = s.n - k;
    const pick = (a: Float64Array): number[] => Array.from({ length: k }, (_, j) => a[(start + j) % ISOLATE_RING]);
    return { heap: pick(s.heap), ext: pick(s.ext), arrivals: pick(s.arrivals), total: s.n };
  }

  /** Dev mode: the app's own GCs, read in the calm for growth between its checkpoints. */
  private onCalmGc(e: GcEvent): void {
    if (this.closed || e.forced || (e.kind !== 'major' && e.kind !== 'minor')) return;
    if (!this.calm.active || this.nudged) {
      if (e.kind === 'major') this.nudge.lastMajorAt = e.at;
      return;
    }
    try {
      if (calmNudge(this.nudge, { major: e.kind === 'major', at: e.at, old: e.oldGenBytes, external: v8.getHeapStatistics().external_memory ?? 0 }) === null) return;
      this.nudged = true;
      this.monitor.processFindings.calm.nudges++;
    } catch (err) {
      this.monitor.fault(err);
    }
  }

  private onGc(e: GcEvent): void {
    if (this.closed || e.kind !== 'major' || e.forced) return;
    try {
      const mu = process.memoryUsage();
      this.record({ at: e.at, heap: e.oldGenBytes, external: mu.external, arrayBuffers: mu.arrayBuffers, rss: mu.rss, held: 0, forced: false, run: this.samplerRun });
      this.taken++;
      this.analyze();
    } catch (err) {
      this.monitor.fault(err);
    }
  }

  private record(p: Point): void {
    const rec = this.monitor.recorder;
    // Request counts are the checkpoint's x axis (core/counted.ts).
    rec.settle();
    // New routes get a column; a route first seen now has zeros before, which is the truth.
    for (const stats of rec.routes.values()) {
      if (this.routeIndex.has(stats.key)) continue;
      this.routeIndex.set(stats.key, this.routeStats.length);
      this.routeStats.push(stats);
      if (this.routeStats.length * WINDOW > this.counts.length) {
        const grown = new Uint32Array(this.counts.length * 2);
        grown.set(this.counts);
        this.counts = grown;
      }
      this.sampled.push(undefined);
      this.streak.push(0);
      this.firstSeen.push(this.monitor.processFindings.checkpoints);
    }
    const slot = this.head;
    for (let r = 0; r < this.routeStats.length; r++) this.counts[r * WINDOW + slot] = this.routeStats[r].requests;
    this.readSampled(slot);
    this.sampleObjects(slot, p.forced);
    if (this.points.length < WINDOW) this.points.push(p); else this.points[slot] = p;
    this.head = (this.head + 1) % WINDOW;
    if (this.size < WINDOW) this.size++;
    const f = this.monitor.processFindings;
    f.checkpoints++;
    f.history.push([p.at, p.heap, p.forced ? 1 : 0]);
    if (f.history.length > HISTORY) f.history.splice(0, f.history.length - HISTORY);
  }

  /**
   * Live bytes per route from the sampling heap profiler, read right after the full GC (and, in
   * dev mode, with the gate still closed and nothing in flight, so no request's garbage counts).
   */
  private readSampled(slot: number): void {
    const att = this.monitor.attribution;
    if (this.samplingInterval === 0 || att === undefined) return;
    // No reading while the load guard has the profiler stopped, and otherwise at every other
    // checkpoint: a read costs about as much as the forced GC (12–20 ms here), and the estimate
    // rests on total growth over total requests, not on the number of readings.
    if (!this.samplerHeld || (this.monitor.options.mode === 'dev' && ++this.sinceProfile < PROFILE_EVERY)) {
      // No reading at this checkpoint: clear the slot, or the ring would still hold the reading
      // taken WINDOW checkpoints ago and interleave it with the fresh ones.
      for (const ring of this.sampled) if (ring !== undefined) ring[slot] = NaN;
      return;
    }
    this.sinceProfile = 0;
    const t0 = performance.now();
    const levels = heapSampler.read();
    this.lastProfileMs = performance.now() - t0;
    this.profileMs += this.lastProfileMs;
    for (let r = 0; r < this.routeStats.length; r++) {
      const id = this.routeStats[r].attributionId;
      const ours = id >= 0 && att.routeOf(id) === this.routeStats[r];
      let ring = this.sampled[r];
      if (ring === undefined) {
        if (!ours) continue;
        ring = this.sampled[r] = new Float64Array(WINDOW).fill(NaN);
      }
      ring[slot] = ours ? (levels.get(id)?.bytes ?? 0) : NaN;
    }
  }

  /**
   * Object counts that are exact (no GC noise), so a route that adds one per request stands out
   * after a few checkpoints: new globals (the seed's FooA, FooB, …), active handles by type, and
   * the listener count of every emitter Node warned about (MaxListenersExceededWarning).
   */
  private sampleObjects(slot: number, withResources: boolean): void {
    const levels = new Map<string, number>();
    levels.set('globals', Object.getOwnPropertyNames(globalThis).length);
    if (withResources) {
      for (const t of process.getActiveResourcesInfo()) levels.set(t, (levels.get(t) ?? 0) + 1);
    }
    for (const w of this.warned) {
      const emitter = w.emitter.deref();
      levels.set(w.name, emitter === undefined ? 0 : emitter.listenerCount(w.type));
    }
    for (const [name, n] of levels) {
      if (this.objectNames.includes(name) || this.objectNames.length >= OBJECT_SERIES) continue;
      this.objectNames.push(name);
      // A series first seen now counted zero before: fill its past with the present level so its
      // first appearance is not read as growth of whatever route happened to run.
      this.objects.push(new Float64Array(WINDOW).fill(n));
    }
    for (let i = 0; i < this.objectNames.length; i++) {
      const v = levels.get(this.objectNames[i]);
      // Resource types are only read at forced checkpoints: keep the last level in between.
      const prev = this.objects[i][(slot + WINDOW - 1) % WINDOW];
      this.objects[i][slot] = v ?? (withResources ? 0 : prev);
    }
  }

  private onWarning(w: Error): void {
    const x = w as Error & { emitter?: { listenerCount?(t: unknown): number }; type?: unknown; count?: number };
    if (w.name !== 'MaxListenersExceededWarning' || x.emitter === undefined || typeof x.emitter.listenerCount !== 'function') return;
    if (this.warned.length >= WARNED_EMITTERS) return;
    const type = x.type as string | symbol;
    const ctor = (x.emitter as object).constructor?.name ?? 'EventEmitter';
    const name = `listeners:${ctor}.${String(type)}`;
    if (this.warned.some((e) => e.name === name && e.emitter.deref() === x.emitter)) return;
    this.warned.push({ name, type, emitter: new WeakRef(x.emitter as { listenerCount(t: unknown): number }) });
  }

  /** The ring as oldest-first arrays. */
  private ordered<T>(ring: ArrayLike<T>): T[] {
    const out: T[] = [];
    const start = this.size < WINDOW ? 0 : this.head;
    for (let i = 0; i < this.size; i++) out.push(ring[(start + i) % WINDOW]);
    return out;
  }

  /** The current window, oldest first: what the analysis sees (for benchmarks and debugging). */
  window(): CheckpointWindow & { routes: string[]; at: number[]; heap: number[]; held: number[]; sampled: number[][]; sampledRuns: number[] } {
    const pts = this.ordered(this.points);
    const objects: Record<string, number[]> = {};
    this.objectNames.forEach((name, i) => { objects[name] = this.ordered(this.objects[i]); });
    return {
      routes: this.routeStats.map((s) => s.key),
      at: pts.map((p) => p.at),
      heap: pts.map((p) => p.heap),
      external: pts.map((p) => p.arrayBuffers),
      held: pts.map((p) => p.held),
      counts: this.routeStats.map((_, r) => this.ordered(this.counts.subarray(r * WINDOW, (r + 1) * WINDOW))),
      objects,
      sampled: this.sampled.map((c) => (c === undefined ? NO_READINGS : this.ordered(c))),
      sampledRuns: pts.map((p) => p.run),
      samplingInterval: this.samplingInterval,
    };
  }

  private analyze(): WindowAnalysis {
    const pts = this.ordered(this.points);
    const w = this.window();
    const a = analyzeWindow(w);
    this.last = { checkpoints: a.checkpoints, heapScale: a.heapScale, dropped: a.dropped };
    this.writeRoutes(a, w);
    this.writeProcess(pts);
    return a;
  }

  /** After a dev-mode checkpoint's analysis: enter or leave the calm (analysis/calm.ts). */
  private stepCalm(a: WindowAnalysis): void {
    const o = this.monitor.options;
    if (o.mode !== 'dev' || o.calmBudget === Infinity || this.closed) return;
    const f = this.monitor.processFindings;
    const routes: CalmRoute[] = [];
    a.routes.forEach((ra, r) => {
      const stats = this.routeStats[r];
      if (stats === undefined) return;
      const judged = ra.evidence.checkpoints >= DEFAULT_RULES.minCheckpoints && ra.evidence.windowRequests >= DEFAULT_RULES.minRequests;
      // Young: first seen lately, and busy now (a route whose requests all came before the
      // window, say during a load test, is not worth the full pace).
      const young = f.checkpoints - this.firstSeen[r] < CALM_RULES.youngCheckpoints && ra.evidence.windowRequests > 0;
      routes.push({ key: stats.key, verdict: stats.verdict, judged, young });
    });
    const last = this.points[(this.head + WINDOW - 1) % WINDOW];
    // Growth as the calm's exit would see it (its slack), not the significance test of the heap
    // findings: forced-GC readings are so exact that a fresh server's JIT warm-up (~400 KB over
    // its first half minute, then 1–2 KB/s) reads as significant growth for minutes.
    // (Not `nativeGrowth` either: RSS climbs by hundreds of KB a second while a process warms up.)
    const growth = this.recentRise > calmSlack(last.heap) ? `live heap rose ${mib(this.recentRise)} over the recent half of the window`
      : this.recentExternalRise > calmSlack(last.external) ? `external memory rose ${mib(this.recentExternalRise)} over the recent half of the window` : null;
    const loud = quietAnalysis({ checkpoints: a.checkpoints, growth, routes });
    const change = stepCalm(this.calm, { loud, heap: last.heap, arrayBuffers: last.arrayBuffers });
    const nudged = this.nudged;
    this.nudged = false;
    if (change === null) {
      if (this.calm.active) settleNudge(this.nudge, { old: this.forcedOld, external: this.forcedExternal, nudged });
      return;
    }
    if (change.to === 'watch') { this.leaveCalm(change.why); return; }
    f.calm.active = true;
    f.calm.since = Date.now();
    f.calm.episodes++;
    this.calmChanges++;
    this.calmRoutes = this.monitor.recorder.routes.size;
    this.nudge = startNudge(this.forcedOld, this.forcedExternal, this.nudge.lastMajorAt);
    this.stepBack();
  }

  private leaveCalm(why: string): void {
    const f = this.monitor.processFindings;
    this.calmChanges++;
    this.calm.active = false;
    this.calm.quiet = 0;
    this.nudged = false;
    f.calm.active = false;
    f.calm.since = null;
    f.calm.reason = flat(why);
    this.stepBack();
    this.pace(TICK_MS);
  }

  private writeRoutes(a: WindowAnalysis, w: { sampled: number[][]; sampledRuns: number[] }): void {
    const sampledSeries = w.sampled;
    const workers = this.monitor.options.workers;
    a.routes.forEach((ra, r) => {
      const stats = this.routeStats[r];
      if (stats === undefined || stats.verdict === 'leaking') return; // the probe's word is final
      if (ra.windowRequests === 0 && stats.requests > 0 && stats.verdict !== 'warming-up') return; // idle: keep what we knew
      const iso = this.isolated.get(stats);
      const isolated = iso === undefined ? undefined : (() => { const x = this.samplesOf(stats); return summarizeIsolated(x.heap, x.arrivals); })();
      // Re-decide with the isolated samples only where the regression had enough to judge at all:
      // the warm-up guards (checkpoints, requests, spare rows) stay the regression's.
      const v = isolated !== undefined && ra.modeled ? decideVerdict({ ...ra.evidence, isolated }) : { ...ra.verdict };
      this.streak[r] = v.verdict === 'growing' ? this.streak[r] + 1 : 0;
      if (v.verdict === 'growing' && this.streak[r] < CONFIRM) {
        v.verdict = 'warming-up';
        v.reason = `confirming (${this.streak[r]} of ${CONFIRM} checkpoints in a row): ${v.reason}`;
      }
      stats.verdict = v.verdict;
      stats.verdictReason = flat(v.reason);
      const findings: Record<string, unknown> = { ...stats.findings };
      delete findings.projection; delete findings.dataDependent; delete findings.nativeGrowth; delete findings.objectGrowth;
      const sm = ra.evidence.sampled?.all;
      const useSampled = sm !== undefined && sm.checkpoints >= 4 && sm.requests >= DEFAULT_RULES.minRequests;
      if (ra.heap !== undefined || useSampled) {
        const ext = ra.external;
        // Isolated samples give the tighter figure once there are enough of them.
        const useIso = !useSampled && isolated !== undefined && ra.heap !== undefined && isolated.all.n >= (DEFAULT_RULES.minIsolated ?? 12) && isolated.all.se < ra.heap.se;
        const c = useSampled ? sm : useIso ? { estimate: Math.max(0, isolated!.all.estimate), low: isolated!.all.low, high: isolated!.all.high } : ra.heap!;
        const heapEst = c.estimate;
        stats.estimate = {
          bytesPerRequest: heapEst,
          // The interval comes from the unconstrained fit and the estimate from the non-negative
          // one, which can differ when routes share their traffic pattern: widen the interval so
          // it always contains the figure shown beside it.
          low: Math.max(0, Math.min(heapEst, c.low)),
          high: Math.max(heapEst, c.high),
          externalBytesPerRequest: ext?.estimate ?? 0,
          basis: useSampled
            ? { method: 'sampling-heap-profiler', checkpoints: sm.checkpoints, samples: sm.requests }
            : useIso
              ? { method: 'isolated-samples', checkpoints: a.checkpoints, samples: isolated!.all.n }
              : { method: this.monitor.options.mode === 'dev' ? 'checkpoint-regression' : 'natural-gc-regression', checkpoints: a.checkpoints, samples: ra.windowRequests },
        };
        // A projection of bytes only where the bytes are measured: a route found by an object count
        // (one new global per request) may keep fewer bytes than the checkpoint noise can resolve.
        const bytes = heapEst + (ext?.estimate ?? 0);
        if (v.verdict === 'growing' && bytes >= DEFAULT_RULES.minBytes) findings.projection = project(bytes, workers);
        if (ext !== undefined && v.basis === 'external') {
          findings.nativeGrowth = { externalBytesPerRequest: ext.estimate, low: Math.max(0, ext.low), high: ext.high };
        }
      }
      delete findings.dataDependence;
      if (this.samplingInterval > 0 && sampledSeries[r] !== undefined && sm !== undefined) {
        // The seed's third case: growth that follows the data rises and falls; a leak never falls back.
        const dd = dataDependence(sampledSeries[r], { interval: this.samplingInterval, runs: w.sampledRuns });
        if (dd !== undefined && v.verdict !== 'growing') {
          findings.dataDependent = true;
          findings.dataDependence = { roseBytes: dd.rose, fellBytes: dd.fell, highBytes: dd.high, lowBytes: dd.low };
        } else if (v.verdict === 'growing') {
          findings.dataDependent = false;
        }
      }
      if (v.basis?.startsWith('objects:')) {
        const name = v.basis.slice('objects:'.length);
        const o = ra.evidence.objects?.find((x) => x.name === name);
        findings.objectGrowth = { type: name, perRequest: o?.all.estimate ?? 0 };
      }
      stats.findings = findings;
    });
  }

  private writeProcess(pts: Point[]): void {
    const f = this.monitor.processFindings;
    this.recentRise = 0;
    this.recentExternalRise = 0;
    const lastP = pts[pts.length - 1];
    f.liveHeapBytes = lastP.heap;
    f.liveExternalBytes = lastP.external;
    f.liveAt = lastP.at;
    // Rates over the most recent half of the window: warm-up at start-up should not count.
    const recent = pts.slice(Math.floor(pts.length / 2));
    if (recent.length < 4) return;
    const t = recent.map((p) => p.at / 1000);
    const heap = fitLine(t, recent.map((p) => p.heap));
    const span = t[t.length - 1] - t[0];
    this.recentRise = heap.slope * span;
    const ext = fitLine(t, recent.map((p) => p.external));
    this.recentExternalRise = ext.slope * span;
    const rss = fitLine(t, recent.map((p) => p.rss));
    f.heapGrowthBytesPerSecond = heap.slope;
    f.externalGrowthBytesPerSecond = ext.slope;
    f.rssGrowthBytesPerSecond = rss.slope;
    const significant = (l: { slope: number; se: number }, min: number): boolean => l.slope > min && l.slope > 3 * l.se;
    const limit = v8.getHeapStatistics().heap_size_limit;
    f.secondsToHeapLimit = significant(heap, 1024) ? secondsToLimit(lastP.heap, limit, heap.slope) : null;
    // Native growth: external memory or RSS climbs while the JS heap is flat (or far slower).
    const nativeRate = Math.max(significant(ext, 4096) ? ext.slope : 0, significant(rss, 65536) ? rss.slope : 0);
    f.nativeGrowth = nativeRate > 0 && (!significant(heap, 1024) || heap.slope < nativeRate / 4);
  }
}

/** Installs the retention detector (checkpoints, analysis, verdicts) on a monitor. */
export function installDetector(monitor: LeakMonitor): void {
  const detector = new Detector(monitor);
  monitor.features.detector = detector;
  detector.start();
}
