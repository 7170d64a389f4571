import { forceFullGc, liveDataHeap } from '../gc';
import { gcWatch } from '../gcwatch';
import { estimateSlope, isLeaking, MIN_PERIODS, periodHint } from './estimate';
import { ScopeReader } from './scope';
import { unifiedDiff } from './diff';
import { checkSnapshotMemory, diffSnapshots, removeQuietly, writeSnapshot } from './snapshot';
import { performance } from 'node:perf_hooks';

/** One constructor (or kind) of objects allocated during the measured iterations and still alive. */
export interface NewObjectEntry {
  constructor: string;
  count: number;
  countPerIteration: number;
  bytesPerIteration: number;
  /** Why the first of them is still alive: the shortest path from the GC roots. */
  retainerPath?: string;
}

export type ProbePhase = 'queued' | 'warmup' | 'snapshot-before' | 'measure' | 'snapshot-after' | 'parse' | 'done';

/** The report of a probe or of leakTest(). */
export interface ProbeReport {
  verdict: 'leaking' | 'stable';
  /** One sentence: why this verdict. */
  reason: string;
  /** Measured iterations asked for. */
  iterations: number;
  /** Measured iterations run: more than asked when a leak every Nth iteration showed up in fewer
   * than five periods (see `period`), so that it is read over five whole periods. */
  measuredIterations: number;
  /** A periodic leak's period: it keeps memory every `period`th iteration (0: steady or none). */
  period: number;
  warmup: number;
  /** Warm-up runs added until the per-run growth was steady (see `adaptiveWarmup`). */
  extraWarmup: number;
  /** JS heap plus external memory kept per iteration (robust slope, see estimate.ts). */
  retainedBytesPerIteration: number;
  heapBytesPerIteration: number;
  externalBytesPerIteration: number;
  /** Standard error of retainedBytesPerIteration. */
  standardErrorBytes: number;
  /** The verdict needs at least this many bytes per iteration (and 3 standard errors). */
  thresholdBytes: number;
  /** Heap + external growth of each measured iteration, after a full GC. */
  bytesPerIterationSeries: number[];
  /** Measured iterations (0-based) left out of the estimate as one-off jumps. */
  excludedIterations: number[];
  /** Objects allocated during the measured iterations and alive after them (null: `objects: false`). */
  newObjects: NewObjectEntry[] | null;
  /** Apache::Leak's ENTER/LEAVE counts: user-visible objects before and after (null without snapshots). */
  objects: { enter: number; leave: number; leaked: number; internalLeaked: number } | null;
  /** Global properties that appeared during the measured iterations (the seed's FooA, FooB, ...). */
  newGlobals: string[];
  /** B::LexInfo: `diff -u` of the handlers' closure variables around the last warm-up run
   * ('' when nothing changed; null when there was nothing to list). */
  scopeDiff: string | null;
  /** Active resources by type (timers, sockets, handles) before and after the measured iterations. */
  resources: { before: Record<string, number>; after: Record<string, number> };
  liveHeapBefore: number;
  liveHeapAfter: number;
  /** The Apache::Leak-style printable summary. */
  summary: string;
  durationMs: number;
  timings: { warmupMs: number; measureMs: number; snapshotMs: number; parseMs: number };
  /** Why the object diff is missing, when it was asked for and could not be made. */
  objectsError?: string;
  startedAt: number;
}

export interface RunSpec {
  /** One iteration: the request replay or the function under test. */
  iteration: () => unknown;
  iterations: number;
  warmup: number;
  /** Take the two heap snapshots for the exact object diff. */
  objects: boolean;
  thresholdBytes: number;
  /** Functions whose closures are listed around the last warm-up run (B::LexInfo). */
  scopeTargets?: () => readonly Function[];
  /** ms since the epoch after which the run gives up with ProbeTimeoutError. */
  deadline: number;
  onProgress?: (phase: ProbePhase, done: number, total: number) => void;
  /** Keep warming up (up to 20 more runs) until the per-run growth is steady. Default true. */
  adaptiveWarmup?: boolean;
  /** Run once more, unmeasured, right after the first snapshot (HTTP: reconnect what it timed out). */
  rerunAfterSnapshot?: boolean;
  /** Fail instead of skipping the object diff when memory is short (leakTest wants a throw). */
  strictObjects?: boolean;
}

export class ProbeTimeoutError extends Error {
  constructor(what: string) {
    super(`probe timed out during ${what}`);
    this.name = 'ProbeTimeoutError';
  }
}

function countByType(list: readonly string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of list) out[t] = (out[t] ?? 0) + 1;
  return out;
}

function fmtBytes(n: number): string {
  const a = Math.abs(n);
  if (a >= 1048576) return `${(n / 1048576).toFixed(2)} MB`;
  if (a >= 10240) return `${(n / 1024).toFixed(1)} KB`;
  return `${Math.round(n)} B`;
}

/**
 * Runs warm-up and measured iterations with a forced full GC after each, reads live heap and
 * external memory, and (optionally) diffs two heap snapshots by node id.
 *
 * GC choice: `forceFullGc()` (V8's `gc` read from a fresh vm context after setting --expose-gc at
 * run time, src/core/gc.ts) rather than the inspector's `HeapProfiler.collectGarbage`, measured
 * by `npm run bench:probe` (section "gc", five calls in a row on an idle server, 2026-11-26):
 * - time: gc() 38–47 ms vs 94 ms at 54 MB, 116 vs 241 ms at 205 MB, 806 vs 1,661 ms at 504 MB
 *   (collectGarbage runs two mark-compacts, and goes through an inspector session);
 * - steadiness of the live heap it leaves: spread 7–14 KB over five gc() calls, 9–259 KB over
 *   five collectGarbage calls (the session's own messages and promises).
 * The probe runs one per iteration, so the faster and steadier one wins.
 */
export async function runProbe(spec: RunSpec): Promise<ProbeReport> {
  const endQuiet = gcWatch.quiet();
  try {
    return await runProbeQuietly(spec);
  } finally {
    // Entries of the last forced GCs arrive batched after a turn of the event loop.
    setImmediate(endQuiet);
  }
}

async function runProbeQuietly(spec: RunSpec): Promise<ProbeReport> {
  const startedAt = Date.now();
  const t0 = performance.now();
  const N = spec.iterations;
  const progress = spec.onProgress ?? (() => undefined);
  const check = (what: string): void => { if (Date.now() > spec.deadline) throw new ProbeTimeoutError(what); };

  // ---- warm-up, with the scope listing around the last warm-up run (the seed's "run the diff
  // twice": what the first call allocates for speed is not a leak) ----
  let scopeDiff: string | null = null;
  const targets = spec.scopeTargets;
  const reader = targets ? new ScopeReader() : undefined;
  const warmHeap = new Float64Array(2);
  const warmExt = new Float64Array(2);
  try {
    for (let i = 0; i < spec.warmup; i++) {
      progress('warmup', i, spec.warmup);
      const last = i === spec.warmup - 1;
      let before: string[] | undefined;
      if (last && reader && targets) {
        const fns = targets();
        if (fns.length > 0) before = await reader.listing(fns);
      }
      await spec.iteration();
      // The same GC and reads as a measured iteration, so that their own first-use costs
      // (feedback vectors, baseline code) are paid here and not charged to the route.
      forceFullGc();
      read(warmHeap, warmExt, i % 2);
      if (before !== undefined && reader && targets) {
        const after = await reader.listing(targets());
        scopeDiff = unifiedDiff(before, after, [`before (run ${i + 1})`, `after (run ${i + 1})`]);
      }
      check('warm-up');
    }
  } finally {
    reader?.close();
  }
  // Adaptive warm-up: go on (at most EXTRA_WARMUP runs) until four successive runs kept the
  // same amount. On the first probe in a process the JIT compiles the probe's own client and the
  // route's code over the first ten or so runs, leaving kilobyte jumps (measured: 0.8 to 8 KB on
  // a route keeping 90 B); a steady leak keeps the same bytes every run, so it stops at once.
  let extra = 0;
  if (spec.warmup > 0 && spec.adaptiveWarmup !== false) {
    const last = new Float64Array(5);
    let seen = 0;
    // A steady leak looks "quiet" at once, so on the first probe of a process the JIT's own
    // compilation would land in the measured runs: the first probe of /zoo/interval read
    // +24% to +39% (1,604–1,806 B for 1,298) and later ones within 1%. Ten runs settle it.
    const minExtra = probesStarted === 0 ? FIRST_PROBE_MIN_EXTRA : 0;
    while (extra < EXTRA_WARMUP) {
      if (seen >= last.length && extra >= minExtra && quiet(last)) break;
      await spec.iteration();
      forceFullGc();
      read(warmHeap, warmExt, 0);
      last.copyWithin(0, 1);
      last[last.length - 1] = warmHeap[0] + warmExt[0];
      seen++;
      extra++;
      progress('warmup', spec.warmup + extra, spec.warmup + EXTRA_WARMUP);
      check('warm-up');
    }
  }
  const warmupMs = performance.now() - t0;
  probesStarted++;

  // ---- the snapshot that assigns ids to everything alive now ----
  // Two snapshots, not the classic three: V8 ids are stable and increase, so the objects of the
  // second snapshot above the first one's largest id are exactly those allocated in between and
  // still alive (MEASURING.md §6: 500 of 500 leaked objects, 0 transient). A third snapshot would
  // only drop the last iteration's own survivors (about one object per kind, under 0.05 per
  // iteration at 30 iterations) and costs as much as the other two: 3 to 5 s on a 50 MB heap.
  // The first one cannot be skipped: ids are given lazily, by a snapshot, so without it there is
  // no boundary (the inspector's getHeapObjectId returns 0 for an object no snapshot has seen).
  let snapshotMs = 0;
  let first: string | undefined;
  let second: string | undefined;
  let objectsError: string | undefined;
  let runsBetweenSnapshots = N;
  try {
    forceFullGc();
    if (spec.objects) {
      try {
        checkSnapshotMemory();
        progress('snapshot-before', 0, N);
        const ts = performance.now();
        first = writeSnapshot('before');
        snapshotMs += performance.now() - ts;
        // The snapshot blocked the event loop for seconds: timers that expired meanwhile (an HTTP
        // server's 5 s keep-alive timeout on the probe's own connection) fire now, before the
        // baseline, and one unmeasured run re-establishes whatever they closed. Its survivors
        // are in the object diff, so counts are divided by the runs between the snapshots.
        if (spec.rerunAfterSnapshot) {
          await new Promise<void>((resolve) => setTimeout(resolve, 1));
          await spec.iteration();
          runsBetweenSnapshots++;
          forceFullGc();
        }
      } catch (e) {
        if (spec.strictObjects) throw e;
        objectsError = e instanceof Error ? e.message : String(e);
      }
    }
    const globals0 = new Set(Object.getOwnPropertyNames(globalThis));
    const resources0 = countByType(process.getActiveResourcesInfo());

    // ---- measured iterations: preallocated series so the loop itself keeps nothing ----
    // Room for the extension to whole periods below.
    const cap = N + Math.min(2 * N, MAX_EXTENSION);
    const heap = new Float64Array(cap + 1);
    const ext = new Float64Array(cap + 1);
    // The estimator runs once inside the loop (below): its first-call costs (feedback vectors)
    // are paid here, before the baseline, and not charged to the route.
    estimateSlope(PRIME_SERIES);
    periodHint(PRIME_SERIES);
    const tm = performance.now();
    settle();
    read(heap, ext, 0);
    let measured = N;
    for (let i = 1; i <= measured; i++) {
      await spec.iteration();
      forceFullGc();
      read(heap, ext, i);
      progress('measure', i, measured);
      check('the measured iterations');
      if (i === N) measured = wholePeriods(heap, ext, N, cap, (performance.now() - tm) / N, spec.deadline);
    }
    const measureMs = performance.now() - tm;
    runsBetweenSnapshots += measured - N;

    const newGlobals = Object.getOwnPropertyNames(globalThis).filter((n) => !globals0.has(n));
    const resources1 = countByType(process.getActiveResourcesInfo());

    if (first !== undefined) {
      progress('snapshot-after', N, N);
      const ts = performance.now();
      second = writeSnapshot('after');
      snapshotMs += performance.now() - ts;
    }

    // ---- analysis ----
    const total = Array.from(heap.subarray(0, measured + 1), (h, i) => h + ext[i]);
    const est = estimateSlope(total);
    const heapEst = estimateSlope(Array.from(heap.subarray(0, measured + 1)));
    const extEst = estimateSlope(Array.from(ext.subarray(0, measured + 1)));
    const series = est.diffs.map((d) => Math.round(d));

    let newObjects: NewObjectEntry[] | null = null;
    let objects: ProbeReport['objects'] = null;
    let parseMs = 0;
    if (first !== undefined && second !== undefined) {
      progress('parse', N, N);
      const tp = performance.now();
      try {
        const left = Math.max(5_000, spec.deadline - Date.now());
        const d = await diffSnapshots(first, second, left);
        const runs = runsBetweenSnapshots;
        newObjects = d.second.groups.map((g) => ({
          constructor: g.constructor,
          count: g.count,
          countPerIteration: round2(g.count / runs),
          bytesPerIteration: Math.round(g.bytes / runs),
          ...(g.retainerPath !== undefined ? { retainerPath: g.retainerPath } : {}),
        }));
        objects = { enter: d.first.userObjects, leave: d.second.userObjects, leaked: d.second.newUserObjects, internalLeaked: d.second.newInternalObjects };
      } catch (e) {
        if (spec.strictObjects) throw e;
        objectsError = e instanceof Error ? e.message : String(e);
      }
      parseMs = performance.now() - tp;
    }

    const leakingBytes = isLeaking(est, spec.thresholdBytes);
    // Globals that appear on most iterations are a leak whatever their size (the seed's FooA...).
    const globalLeak = newGlobals.length >= Math.max(2, Math.ceil(measured / 2));
    const verdict: ProbeReport['verdict'] = leakingBytes || globalLeak ? 'leaking' : 'stable';
    const perIt = Math.round(est.perIteration);
    let reason: string;
    const every = leakingBytes && est.period > 0 ? ` (a step every ${est.period} iterations)` : '';
    const over = measured > N ? `${measured} iterations (${N} asked, extended to ${MIN_PERIODS} whole periods)` : `${N} iterations`;
    if (leakingBytes) reason = `keeps ${fmtBytes(perIt)} per iteration${every} (± ${fmtBytes(est.standardError)}) over ${over} after a full GC each`;
    else if (globalLeak) reason = `${newGlobals.length} new globals in ${over} (${newGlobals.slice(0, 3).join(', ')}${newGlobals.length > 3 ? ', …' : ''})`;
    else reason = `${fmtBytes(perIt)} per iteration, under the ${fmtBytes(spec.thresholdBytes)} threshold or within noise (± ${fmtBytes(est.standardError)})`;

    const report: ProbeReport = {
      verdict,
      reason,
      iterations: N,
      measuredIterations: measured,
      period: leakingBytes ? est.period : 0,
      warmup: spec.warmup,
      extraWarmup: extra,
      retainedBytesPerIteration: perIt,
      heapBytesPerIteration: Math.round(heapEst.perIteration),
      externalBytesPerIteration: Math.round(extEst.perIteration),
      standardErrorBytes: Math.round(est.standardError),
      thresholdBytes: spec.thresholdBytes,
      bytesPerIterationSeries: series,
      excludedIterations: est.excluded,
      newObjects,
      objects,
      newGlobals: newGlobals.slice(0, 100),
      scopeDiff,
      resources: { before: resources0, after: resources1 },
      liveHeapBefore: heap[0],
      liveHeapAfter: heap[measured],
      summary: '',
      durationMs: Math.round(performance.now() - t0),
      timings: { warmupMs: Math.round(warmupMs), measureMs: Math.round(measureMs), snapshotMs: Math.round(snapshotMs), parseMs: Math.round(parseMs) },
      startedAt,
    };
    if (objectsError !== undefined) report.objectsError = objectsError;
    report.summary = summarize(report);
    progress('done', N, N);
    return report;
  } finally {
    removeQuietly(first);
    removeQuietly(second);
  }
}

/** At most this many iterations beyond the asked-for ones (and never more than twice as many). */
const MAX_EXTENSION = 1000;

/** A cumulative series with a step every 5th iteration: runs every path of the estimator once. */
const PRIME_SERIES = Array.from({ length: 31 }, (_, i) => i * 100 + Math.floor((i + 4) / 5) * 10_000);

/**
 * How many iterations to measure in all, once the asked-for `n` are done: more when the series
 * shows a leak every pth iteration in fewer than MIN_PERIODS periods, up to MIN_PERIODS whole
 * periods. The estimator reads each phase of such a leak as a median across periods, and three
 * periods are too few to outvote the JIT's kilobyte bumps: measured on the zoo's every-10th leak,
 * recorded 30-iteration windows read within 10% in 31 of 39, windows of 47 and 100 in all 22.
 * Never past the cap nor when the extra runs would eat more than half the time left.
 */
function wholePeriods(heap: Float64Array, ext: Float64Array, n: number, cap: number, msPerIteration: number, deadline: number): number {
  const series: number[] = [];
  for (let i = 0; i <= n; i++) series.push(heap[i] + ext[i]);
  // A pattern the estimate takes, or one with a step that read small (see periodHint).
  const p = estimateSlope(series).period || periodHint(series);
  if (p === 0 || MIN_PERIODS * p <= n) return n;
  const want = Math.min(cap, MIN_PERIODS * p);
  const affordable = Math.floor((deadline - Date.now()) / 2 / Math.max(1, msPerIteration));
  return want - n <= affordable ? want : n;
}

/** Probes (and leakTest runs) that finished their warm-up in this process. */
let probesStarted = 0;
/** Extra warm-up runs the first probe of a process always does, whatever it looks like. */
const FIRST_PROBE_MIN_EXTRA = 10;

/** At most this many warm-up runs beyond the asked-for ones, to reach a steady state. */
const EXTRA_WARMUP = 20;

/** Successive differences of `v` all within 512 B of each other. */
function quiet(v: Float64Array): boolean {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 1; i < v.length; i++) {
    const d = v[i] - v[i - 1];
    if (d < lo) lo = d;
    if (d > hi) hi = d;
  }
  return hi - lo <= 512;
}

/**
 * Live heap and external memory, right after the iteration's full GC. A dead ArrayBuffer's memory
 * leaves `external` only when V8's concurrent sweeper has run, so a Buffer dropped by an iteration
 * shows on it and comes back on the next one or two (measured on the zoo's every-10th route:
 * +15,376 then -5,120). The estimator reads that give-back as part of a periodic pattern. A second
 * GC before reading would settle it, but HTTP replays drop a 772 B buffer on every iteration, so it
 * ran every time: the 50 MB probe took 4.7 to 6.1 s instead of 2.4 to 5.1 s, and six every-10th
 * probes read no closer (5 of 6 within 10%, against 6 of 6 without). A scavenge instead made a
 * 200 KB transient appear next to a step on the first leakTest of a process.
 */
function read(heap: Float64Array, ext: Float64Array, i: number): void {
  heap[i] = liveDataHeap();
  ext[i] = process.memoryUsage().external;
}

/**
 * Full GCs until the live heap stops moving, and never fewer than BYTECODE_OLD_AGE + 1.
 * - V8 flushes the bytecode of a function that has not run for 5 GCs (`--bytecode-old-age`). A
 *   probe forces a GC per iteration, so code last run just before it (the scope listing's
 *   inspector calls, the app's other routes) would be flushed at the 5th measured iteration:
 *   measured here, a one-off drop of 200 to 260 KB. Six GCs up front flush it before the baseline.
 *   (Turning flushing off with `--no-flush-bytecode` at run time did not stop it on Node 20.)
 * - Objects with weak callbacks or finalizers need a second cycle.
 */
const BYTECODE_OLD_AGE = 5;
function settle(): void {
  let last = -1;
  for (let k = 0; k < BYTECODE_OLD_AGE + 4; k++) {
    forceFullGc();
    const now = liveDataHeap();
    if (k >= BYTECODE_OLD_AGE && Math.abs(now - last) < 4096) return;
    last = now;
  }
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

/** The Apache::Leak-style text: ENTER / LEAVE / !!! n objects leaked !!! */
export function summarize(r: ProbeReport): string {
  const lines: string[] = [];
  const o = r.objects;
  lines.push(o ? `ENTER: ${o.enter} objects (live heap ${fmtBytes(r.liveHeapBefore)})` : `ENTER: live heap ${fmtBytes(r.liveHeapBefore)}`);
  if (r.newObjects && r.newObjects.length > 0) {
    const top = r.newObjects.slice(0, 6).map((g) => `${g.count} ${g.constructor}`).join(', ');
    lines.push(`  new and still alive: ${top}${r.newObjects.length > 6 ? ', …' : ''}`);
  }
  lines.push(o ? `LEAVE: ${o.leave} objects (live heap ${fmtBytes(r.liveHeapAfter)}) after ${r.measuredIterations} iterations`
    : `LEAVE: live heap ${fmtBytes(r.liveHeapAfter)} after ${r.measuredIterations} iterations`);
  if (r.newGlobals.length > 0) lines.push(`  new globals: ${r.newGlobals.slice(0, 8).join(', ')}${r.newGlobals.length > 8 ? ', …' : ''}`);
  const bytes = `${fmtBytes(r.retainedBytesPerIteration)}/iteration retained (heap ${fmtBytes(r.heapBytesPerIteration)}, external ${fmtBytes(r.externalBytesPerIteration)})`;
  if (r.verdict === 'leaking') {
    lines.push(o ? `!!! ${o.leaked} objects leaked !!! ${bytes}` : `!!! leaked: ${bytes} !!!`);
  } else {
    lines.push(`no leak: ${bytes}${o ? `; ${o.leaked} new objects still alive, within noise` : ''}`);
  }
  if (r.scopeDiff) lines.push('scope diff (B::LexInfo, around the last warm-up run):', r.scopeDiff.trimEnd());
  return lines.join('\n');
}
