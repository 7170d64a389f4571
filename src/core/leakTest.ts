import { AssertionError } from 'node:assert';
import { runProbe, type ProbeReport } from './probe/runner';

export type { ProbeReport, NewObjectEntry } from './probe/runner';

/** Options of `leakTest()` and `assertNoLeak()`. */
export interface LeakTestOptions {
  /** Measured iterations. Default 30 (1 to 100,000). */
  iterations?: number;
  /** Unmeasured runs first, so lazy initialisation and JIT warm-up do not count. Default 3. */
  warmup?: number;
  /** Exact new-object counts from two heap snapshots. Default true. Costs a snapshot's time and memory. */
  objects?: boolean;
  /** Bytes per iteration below which retention is not called a leak. Default 64. */
  thresholdBytes?: number;
  /** Give up (throw) after this many ms. Default 120000. */
  timeoutMs?: number;
}

/** The report of `leakTest()`: the probe's report plus its printable summary. */
export type LeakTestReport = ProbeReport;

function intOpt(o: LeakTestOptions, name: keyof LeakTestOptions, def: number, min: number, max: number): number {
  const v = o[name];
  if (v === undefined) return def;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
    throw new TypeError(`leakTest: option "${name}" must be an integer from ${min} to ${max}; received ${String(v)}`);
  }
  return v;
}

/** Default bytes-per-iteration threshold: the seed's FooA global costs about 90 B. */
export const DEFAULT_THRESHOLD_BYTES = 64;

/**
 * Apache::Leak for Node: runs `fn` (sync or async) a few times to warm up, then `iterations`
 * times with a forced full GC after each, and reports what stayed alive. No `--expose-gc` needed.
 * The report carries the verdict (`leaking` / `stable`), retained bytes per iteration (JS heap
 * and external memory apart), the exact new objects by constructor with a retainer path (two
 * heap snapshots diffed by node id, parsed in a worker thread), new globals, a `diff -u` of `fn`'s
 * closure variables around the last warm-up call (B::LexInfo), and a printable `summary`.
 * Throws if a heap snapshot would not fit in free memory (pass `objects: false` then).
 *
 * @example
 * ```js
 * const { leakTest } = require('leakwatch');
 * const cache = [];
 * const report = await leakTest(() => { cache.push(Buffer.alloc(1024)); }, { iterations: 30 });
 * console.log(report.verdict);   // 'leaking'
 * console.log(report.summary);   // ENTER: ... LEAVE: ... !!! 60 objects leaked !!!
 * ```
 */
export async function leakTest(fn: () => unknown, options: LeakTestOptions = {}): Promise<LeakTestReport> {
  if (typeof fn !== 'function') throw new TypeError('leakTest: the first argument must be a function');
  if (options === null || typeof options !== 'object') throw new TypeError('leakTest: options must be an object');
  const iterations = intOpt(options, 'iterations', 30, 1, 100_000);
  const warmup = intOpt(options, 'warmup', 3, 0, 10_000);
  const thresholdBytes = intOpt(options, 'thresholdBytes', DEFAULT_THRESHOLD_BYTES, 0, 1 << 30);
  const timeoutMs = intOpt(options, 'timeoutMs', 120_000, 1, 86_400_000);
  if (options.objects !== undefined && typeof options.objects !== 'boolean') throw new TypeError('leakTest: option "objects" must be a boolean');
  return runProbe({
    iteration: fn,
    iterations,
    warmup,
    objects: options.objects ?? true,
    thresholdBytes,
    scopeTargets: () => [fn],
    deadline: Date.now() + timeoutMs,
    strictObjects: true,
  });
}

/**
 * Runs `leakTest(fn, options)` and throws an `AssertionError` (node:assert) carrying the
 * Apache::Leak-style summary when the verdict is `leaking`. Resolves to the report otherwise.
 *
 * @example
 * ```js
 * const test = require('node:test');
 * const { assertNoLeak } = require('leakwatch');
 * test('render() keeps nothing', async () => {
 *   await assertNoLeak(() => render({ user: 'ada' }), { iterations: 50 });
 * });
 * ```
 */
export async function assertNoLeak(fn: () => unknown, options: LeakTestOptions = {}): Promise<LeakTestReport> {
  const report = await leakTest(fn, options);
  if (report.verdict === 'leaking') {
    throw new AssertionError({
      message: `leak detected: ${report.reason}\n${report.summary}`,
      actual: report.retainedBytesPerIteration,
      expected: 0,
      operator: 'assertNoLeak',
    });
  }
  return report;
}
