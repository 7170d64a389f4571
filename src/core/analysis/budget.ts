/**
 * Dev mode's checkpoint spacing, as pure arithmetic on what the detector measured (no clocks):
 * unit-tested on plain numbers, and called from `Detector.tick()`.
 */

/** What the last checkpoint cost, and what the app did since it ended. */
export interface BudgetInput {
  /** Wall time of the last checkpoint (drain, forced GC, analysis), ms. */
  lastCostMs: number;
  /** Process CPU time during the last checkpoint, ms (GC helper threads included). */
  lastCpuMs: number;
  /** Of which: reading the sampling heap profile, ms (main-thread work with no GC aftermath). */
  lastProfileMs: number;
  /** Wall time since the last checkpoint ended, ms. */
  elapsedMs: number;
  /** Process CPU time since the last checkpoint ended, ms: the app's, plus the aftermath of ours. */
  cpuSinceMs: number;
  /** The `cpuBudget` option: our CPU as a share of the app's (Infinity: no such cap). */
  cpuBudget: number;
  /**
   * The aftermath factor measured on this process (see measureAftermath), when there is one; the
   * rules' constant otherwise. Never below the constant.
   */
  aftermath?: number;
}

/** Limits of the spacing rule (the detector's constants; a test may pass others). */
export interface BudgetRules {
  /** Share of wall time checkpoints may take. */
  wallShare: number;
  /** Share of one core checkpoints may take, whatever the app uses. */
  coreShare: number;
  /**
   * A forced full GC costs the app more CPU after it than during it: V8 drops code compiled
   * against objects no longer alive and compiles it again, and the first scavenges are slower.
   * The checkpoint's CPU (less the profile read) is charged this many times. (Measured under a
   * 2,000 req/s Fastify load, a wall-time budget alone let checkpoints cost +529% CPU per request.)
   */
  aftermath: number;
  /** An app using less than this share of a core counts as using this much. */
  minAppShare: number;
  /** The shortest gap, ms. */
  minGapMs: number;
}

export const BUDGET_RULES: BudgetRules = { wallShare: 0.08, coreShare: 0.05, aftermath: 2, minAppShare: 0.02, minGapMs: 25 };

/** The CPU a checkpoint is charged, ms: its own, the aftermath of its GC, and the profile read. */
export function chargedCpuMs(i: Pick<BudgetInput, 'lastCpuMs' | 'lastProfileMs' | 'aftermath'>, rules: BudgetRules = BUDGET_RULES): number {
  return Math.max(0, i.lastCpuMs - i.lastProfileMs) * factorOf(i, rules) + i.lastProfileMs;
}

function factorOf(i: Pick<BudgetInput, 'aftermath'>, rules: BudgetRules): number {
  return Math.max(rules.aftermath, i.aftermath ?? rules.aftermath);
}

/** What the process did in the two parts of the gap after a checkpoint (see measureAftermath). */
export interface AftermathInput {
  /** The checkpoint's own CPU, less its profile read, ms. */
  ownCpuMs: number;
  /** Process CPU and requests in the first part of the gap (the checkpoint's aftermath lands there)… */
  earlyCpuMs: number;
  earlyRequests: number;
  /** …and in the rest of it, up to the next checkpoint: the app's own pace. */
  lateCpuMs: number;
  lateRequests: number;
}

/**
 * The factor a checkpoint's own CPU is really charged on this process: 1 plus the excess CPU per
 * request right after it, against the pace later in the gap, over its own CPU. Undefined when the
 * gap held too few requests to tell. On Express at 200 req/s a forced GC cost ~3.5 times its own
 * CPU again over the next ~3 s (recompiling what it deoptimized), where Fastify, whose last reply
 * is held across the GC (LeakMonitor.holdLast), pays about once.
 *
 * @example
 * ```ts
 * // 10 ms of checkpoint; 300 requests in 3 s cost 150 ms, against 0.4 ms a request later on.
 * measureAftermath({ ownCpuMs: 10, earlyCpuMs: 150, earlyRequests: 300, lateCpuMs: 200, lateRequests: 500 }); // → 4
 * ```
 */
export function measureAftermath(i: AftermathInput): number | undefined {
  if (!(i.ownCpuMs > 0) || i.earlyRequests < 20 || i.lateRequests < 50) return undefined;
  const excess = i.earlyCpuMs - (i.earlyRequests * i.lateCpuMs) / i.lateRequests;
  return 1 + Math.max(0, excess) / i.ownCpuMs;
}

/** The least time from the end of one checkpoint to the next, ms, under each kind of budget. */
export interface Gaps {
  /** Under the fixed budgets: a share of wall time and a share of one core. */
  fixed: number;
  /** Under `cpuBudget` times the CPU the app itself used meanwhile (0 when `cpuBudget` is Infinity). */
  app: number;
}

/**
 * The gaps a checkpoint's cost asks for. The fixed one spaces checkpoints that come every ~100
 * requests (`checkpointIntervalMs` may bring one sooner); the app's one is never overridden: it
 * keeps the charged CPU within `cpuBudget` times the app's own (its process CPU, less the
 * aftermath charged to our last checkpoint). That is the one that can bind at a developer's pace:
 * a cheap app at 200 req/s uses a few percent of a core, and the fixed budgets alone let
 * checkpoints and profile reads double its CPU (bench:overhead `--rate 200`, sixth round: +42% to
 * +139% CPU per request).
 *
 * @example
 * ```ts
 * // A checkpoint that took 12 ms of CPU; the app has used 40 ms of CPU in the 1 s since.
 * checkpointGaps({ lastCostMs: 10, lastCpuMs: 12, lastProfileMs: 0, elapsedMs: 1000, cpuSinceMs: 52, cpuBudget: 0.1 });
 * // → { fixed: 480, app: 6000 }: 24 ms charged, against a tenth of the app's 4% of a core
 * ```
 */
export function checkpointGaps(i: BudgetInput, rules: BudgetRules = BUDGET_RULES): Gaps {
  // The fixed budgets keep the constant they were tuned with (the zoo's detection speed rests on
  // them); the budget relative to the app uses the measured aftermath.
  const fixedCharge = chargedCpuMs({ lastCpuMs: i.lastCpuMs, lastProfileMs: i.lastProfileMs }, rules);
  const fixed = Math.max(rules.minGapMs, i.lastCostMs / rules.wallShare, fixedCharge / rules.coreShare);
  const charged = chargedCpuMs(i, rules);
  if (!(charged > 0) || !(i.elapsedMs > 0) || i.cpuBudget === Infinity) return { fixed, app: 0 };
  const app = Math.max(0, i.cpuSinceMs - Math.max(0, i.lastCpuMs - i.lastProfileMs) * (factorOf(i, rules) - 1));
  const allowed = i.cpuBudget * Math.max(app / i.elapsedMs, rules.minAppShare);
  return { fixed, app: charged / allowed };
}
