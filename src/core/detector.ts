import v8 from 'node:v8';
import type { LeakMonitor } from './monitor';
import type { RouteStats } from './recorder';
import { forceFullGc } from './gc';
import { gcWatch, type GcEvent } from './gcwatch';
import { analyzeWindow, type CheckpointWindow, type WindowAnalysis } from './analysis/checkpoints';
import { fitLine } from './analysis/regression';
import { project, secondsToLimit } from './analysis/projection';
import { DEFAULT_RULES } from './analysis/verdict';

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
/** Dev mode: checkpoints take at most this share of wall time (forced GC plus the drain). */
const BUDGET = 0.08;
/** Dev mode: a checkpoint is due after this many requests (if the time budget allows). */
const REQUESTS_PER_CHECKPOINT = 100;
const TICK_MS = 25;
/**
 * A route reads `growing` only after this many consecutive analyses said so. On the zoo, single
 * analyses during JIT warm-up sometimes pinned another route's leak on a control (a no-op route
 * read +2 KB/request for a dozen checkpoints); three in a row removed every such case we recorded.
 */
export const CONFIRM = 3;

const CODE_SPACES = new Set(['code_space', 'code_large_object_space', 'read_only_space']);

/**
 * Live JS heap without the code spaces: JIT code comes and goes by hundreds of KB as functions
 * are (re)optimised, which is noise for "does this route keep data", measured at 150–200 KB spikes.
 */
function liveDataHeap(): number {
  let sum = 0;
  for (const s of v8.getHeapSpaceStatistics()) if (!CODE_SPACES.has(s.space_name)) sum += s.space_used_size;
  return sum;
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
}

/**
 * The stateful half of detection: takes checkpoints, keeps fixed-size windows, runs the pure
 * analysis (src/core/analysis) and writes verdicts, estimates and findings into each RouteStats
 * and into `monitor.processFindings`.
 *
 * Dev mode: a checkpoint closes the gate, waits for in-flight requests to finish, forces a full
 * GC, reads live heap, external memory and per-route request counts, and reopens the gate. It is
 * due every ~100 requests, no more often than the time budget allows (8% of wall time, measured
 * from its own cost), and at least every `checkpointIntervalMs` while there is traffic.
 * Production mode: never forces a GC; each natural mark-compact GC is a checkpoint.
 */
export class Detector {
  private readonly routeIndex = new Map<string, number>();
  private readonly routeStats: RouteStats[] = [];
  /** counts[route] is a ring aligned with `points`. */
  private readonly counts: Float64Array[] = [];
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
  /** Checkpoints taken, skipped (could not drain in time), and ms spent in them. */
  taken = 0;
  skipped = 0;
  costMs = 0;
  /** Of which: waiting for in-flight requests, and the forced GCs themselves. */
  drainMs = 0;
  gcMs = 0;
  analyzeMs = 0;
  last: WindowAnalysis | undefined;
  private closed = false;

  constructor(private readonly monitor: LeakMonitor) {}

  start(): void {
    // Listening does not silence Node's own printing of the warning.
    process.on('warning', this.warningListener);
    if (this.monitor.options.mode === 'dev') {
      this.timer = setInterval(() => this.tick(), TICK_MS);
      this.timer.unref();
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
  }

  private tick(): void {
    if (this.busy || this.closed) return;
    const rec = this.monitor.recorder;
    const since = rec.totalRequests - this.lastTotal;
    if (since === 0) return;
    const now = performance.now();
    const elapsed = now - this.lastAt;
    const minGap = Math.max(TICK_MS, this.lastCostMs / BUDGET);
    const due = (since >= REQUESTS_PER_CHECKPOINT && elapsed >= minGap) || elapsed >= this.monitor.options.checkpointIntervalMs;
    if (!due) return;
    this.busy = true;
    this.checkpoint().catch((e) => this.monitor.fault(e)).finally(() => { this.busy = false; });
  }

  /** One quiescent checkpoint. Public so tests and the bench can force one. */
  async checkpoint(): Promise<boolean> {
    const m = this.monitor;
    const t0 = performance.now();
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
      const heap = liveDataHeap();
      const mu = process.memoryUsage();
      this.record({ at: Date.now(), heap, external: mu.external, arrayBuffers: mu.arrayBuffers, rss: mu.rss, held: m.gate.queued, forced: true });
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
    this.analyze();
    const ams = performance.now() - a0;
    this.analyzeMs += ams;
    this.lastCostMs += ams;
    this.costMs += ams;
    return true;
  }

  private onGc(e: GcEvent): void {
    if (this.closed || e.kind !== 'major' || e.forced) return;
    try {
      const mu = process.memoryUsage();
      this.record({ at: e.at, heap: e.oldGenBytes, external: mu.external, arrayBuffers: mu.arrayBuffers, rss: mu.rss, held: 0, forced: false });
      this.taken++;
      this.analyze();
    } catch (err) {
      this.monitor.fault(err);
    }
  }

  private record(p: Point): void {
    const rec = this.monitor.recorder;
    // New routes get a column; a route first seen now has zeros before, which is the truth.
    for (const stats of rec.routes.values()) {
      if (this.routeIndex.has(stats.key)) continue;
      this.routeIndex.set(stats.key, this.counts.length);
      this.routeStats.push(stats);
      this.counts.push(new Float64Array(WINDOW));
      this.streak.push(0);
    }
    const slot = this.head;
    for (let r = 0; r < this.counts.length; r++) this.counts[r][slot] = this.routeStats[r].requests;
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
  window(): CheckpointWindow & { routes: string[]; at: number[]; heap: number[]; held: number[] } {
    const pts = this.ordered(this.points);
    const objects: Record<string, number[]> = {};
    this.objectNames.forEach((name, i) => { objects[name] = this.ordered(this.objects[i]); });
    return {
      routes: this.routeStats.map((s) => s.key),
      at: pts.map((p) => p.at),
      heap: pts.map((p) => p.heap),
      external: pts.map((p) => p.arrayBuffers),
      held: pts.map((p) => p.held),
      counts: this.counts.map((c) => this.ordered(c)),
      objects,
    };
  }

  private analyze(): void {
    const pts = this.ordered(this.points);
    const a = analyzeWindow(this.window());
    this.last = a;
    this.writeRoutes(a);
    this.writeProcess(pts);
  }

  private writeRoutes(a: WindowAnalysis): void {
    const workers = this.monitor.options.workers;
    a.routes.forEach((ra, r) => {
      const stats = this.routeStats[r];
      if (stats === undefined || stats.verdict === 'leaking') return; // the probe's word is final
      if (ra.windowRequests === 0 && stats.requests > 0 && stats.verdict !== 'warming-up') return; // idle: keep what we knew
      const v = { ...ra.verdict };
      this.streak[r] = v.verdict === 'growing' ? this.streak[r] + 1 : 0;
      if (v.verdict === 'growing' && this.streak[r] < CONFIRM) {
        v.verdict = 'warming-up';
        v.reason = `confirming (${this.streak[r]} of ${CONFIRM} checkpoints in a row): ${v.reason}`;
      }
      stats.verdict = v.verdict;
      stats.verdictReason = v.reason;
      const findings: Record<string, unknown> = { ...stats.findings };
      delete findings.projection; delete findings.dataDependent; delete findings.nativeGrowth; delete findings.objectGrowth;
      if (ra.heap !== undefined) {
        const ext = ra.external;
        stats.estimate = {
          bytesPerRequest: ra.heap.estimate,
          low: Math.max(0, ra.heap.low),
          high: Math.max(0, ra.heap.high),
          externalBytesPerRequest: ext?.estimate ?? 0,
          basis: { method: this.monitor.options.mode === 'dev' ? 'checkpoint-regression' : 'natural-gc-regression', checkpoints: a.checkpoints, samples: ra.windowRequests },
        };
        // A projection of bytes only where the bytes are measured: a route found by an object count
        // (one new global per request) may keep fewer bytes than the checkpoint noise can resolve.
        const bytes = ra.heap.estimate + (ext?.estimate ?? 0);
        if (v.verdict === 'growing' && bytes >= DEFAULT_RULES.minBytes) findings.projection = project(bytes, workers);
        if (ext !== undefined && v.basis === 'external') {
          findings.nativeGrowth = { externalBytesPerRequest: ext.estimate, low: Math.max(0, ext.low), high: ext.high };
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
    const lastP = pts[pts.length - 1];
    f.liveHeapBytes = lastP.heap;
    f.liveExternalBytes = lastP.external;
    f.liveAt = lastP.at;
    // Rates over the most recent half of the window: warm-up at start-up should not count.
    const recent = pts.slice(Math.floor(pts.length / 2));
    if (recent.length < 4) return;
    const t = recent.map((p) => p.at / 1000);
    const heap = fitLine(t, recent.map((p) => p.heap));
    const ext = fitLine(t, recent.map((p) => p.external));
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
