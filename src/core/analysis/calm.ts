/**
 * Dev mode's calm: when every route the window can judge reads `stable`, the detector has nothing
 * to find, and watching at full pace costs the app for nothing (a hello-world app at 200 req/s
 * paid +50% to +100% CPU per request for checkpoints and the heap profiler, bench:overhead). So it
 * steps back, as under load: checkpoints spaced by `calmBudget`, the profiler paused, per-request
 * heap readings sampled. It steps in again at the first sign of growth. Pure rules on what the
 * detector measured, unit-tested on plain numbers (test/core/calm.test.ts).
 */

/** One route, as the last analysis left it. */
export interface CalmRoute {
  /** `METHOD /template`, to say which route ended a calm. */
  key: string;
  /** The route's verdict after confirmation (`growing` only after CONFIRM analyses in a row). */
  verdict: 'warming-up' | 'stable' | 'growing' | 'leaking';
  /**
   * Whether the window held enough of the route to judge it (checkpoints and requests). A route
   * that is new, rare or idle is not judged: it must not keep the detector at full pace forever.
   */
  judged: boolean;
  /**
   * Whether the route was first seen only a few checkpoints ago (CalmRules.youngCheckpoints) and
   * has requests in the window. A young route not judged yet keeps the detector at full pace until
   * it is: new code is where a leak is likeliest, and the calm's checkpoints may be half a minute
   * apart.
   */
  young: boolean;
}

export interface CalmRules {
  /** Checkpoints the window must hold before the detector may call itself calm. */
  minCheckpoints: number;
  /** Analyses in a row that must be quiet before it does. */
  confirm: number;
  /** Growth of live heap or ArrayBuffer memory above the calm's lowest reading that ends it, bytes… */
  slackBytes: number;
  /** …or this share of that lowest reading, if larger (a big heap's readings wander more). */
  slackShare: number;
  /** A route first seen fewer checkpoints ago than this is young (see CalmRoute.young). */
  youngCheckpoints: number;
  /**
   * The least factor a checkpoint in the calm is charged on its own CPU (see calmAftermath and
   * budget.ts). Its forced GC comes after a long quiet gap with no request alive, and costs the app
   * far more afterwards than the detector's 3 s aftermath reading sees.
   */
  aftermath: number;
  /** A scavenge's reading nudges only when the app's last mark-compact is at least this old, ms (see calmNudge). */
  scavengeAfterMs: number;
}

/**
 * 16 checkpoints: 8 before any verdict, 3 in a row to confirm one, and 5 more for weak object
 * series (a global added on one request in five, mixed with other routes, first read as growing at
 * the 12th to 15th checkpoint in the detector's tests). A calm begun too early misses a small
 * leak for a whole calm gap, minutes at 200 req/s now that its checkpoints are charged their
 * aftermath (`aftermath`); a bigger one is seen by a nudge (calmNudge). 1 MiB: the zoo's stable
 * routes moved live heap by up to ~250 KB between forced GCs; a 1 KB/request leak at 200 req/s
 * passes 1 MiB in 5 s. 30 s without a mark-compact before a scavenge's reading counts: Express at
 * 200 req/s had one every ~6 s; an app with none in 30 s is read by its scavenges (calmNudge).
 */
export const CALM_RULES: CalmRules = { minCheckpoints: 16, confirm: 3, slackBytes: 1024 * 1024, slackShare: 0.02, youngCheckpoints: 32, aftermath: 20, scavengeAfterMs: 30_000 };

/**
 * The aftermath factor a checkpoint in the calm is charged (budget.ts): what the detector
 * measured, but never less than `rules.aftermath`.
 *
 * Why a floor: on Express at 200 req/s each of the calm's forced GCs deoptimized ~20 of the app's
 * hot functions ("weak objects": the hidden classes of Express's requests and responses, whose
 * prototypes Express swaps, die with the last request), and V8 recompiled them over the next
 * 20-30 s, long past the 3 s the detector's own reading looks at (it read 3.4-4.5). Interleaved
 * with a bare server (bench:interleave), the calm cost +15% CPU with its checkpoints ~18 s apart,
 * and +1% with none: ~250 ms of the app's CPU per checkpoint. Over 5-minute spans with the
 * checkpoints 100 s apart, 220-800 ms each. Their own process CPU (GC threads included) read
 * 23-38 ms: factors of 8 to 30. With 12 Express read +12.3% and +5.9%; 20 (with calmBudget
 * 0.02) keeps the calm's checkpoints more than 6 minutes apart on a hello-world app at 200 req/s,
 * and the app's own GCs nudge a checkpoint forward when they read growth (calmNudge).
 *
 * @example
 * ```ts
 * calmAftermath(3.4); // → 20
 * calmAftermath(undefined); // → 20
 * ```
 */
export function calmAftermath(measured: number | undefined, rules: CalmRules = CALM_RULES): number {
  return Math.max(measured ?? 0, rules.aftermath);
}

/**
 * Whether one analysis is quiet: the window is long enough, every judged route reads `stable`,
 * and the process's memory shows no growth past the calm's slack (`growth`: why not, if it
 * does). A `growing` (or probe-confirmed `leaking`) route keeps the detector at full pace: it has
 * found something, and its estimate and projection keep improving while the developer looks at
 * it. Returns null when quiet, else why not.
 *
 * @example
 * ```ts
 * quietAnalysis({ checkpoints: 40, growth: null, routes: [{ key: 'GET /a', verdict: 'stable', judged: true, young: false }, { key: 'GET /b', verdict: 'warming-up', judged: false, young: false }] });
 * // → null (quiet): GET /b is not new and too rare to judge
 * ```
 */
export function quietAnalysis(
  a: { checkpoints: number; growth: string | null; routes: readonly CalmRoute[] },
  rules: CalmRules = CALM_RULES,
): string | null {
  if (a.checkpoints < rules.minCheckpoints) return `the window holds ${a.checkpoints} checkpoints (the calm needs ${rules.minCheckpoints})`;
  if (a.growth !== null) return a.growth;
  for (const r of a.routes) {
    if (r.verdict === 'growing' || r.verdict === 'leaking') return `${r.key} reads ${r.verdict}`;
    if (r.judged && r.verdict !== 'stable') return `${r.key} reads ${r.verdict}`;
    if (!r.judged && r.young) return `${r.key} is new and not judged yet`;
  }
  return null;
}

/** The bytes above the calm's lowest reading at which it ends. */
export function calmSlack(lowest: number, rules: CalmRules = CALM_RULES): number {
  return Math.max(rules.slackBytes, lowest * rules.slackShare);
}

/** What the detector keeps between checkpoints about its calm. */
export interface CalmState {
  active: boolean;
  /** Quiet analyses in a row. */
  quiet: number;
  /** Lowest live heap and ArrayBuffer readings since the calm began. */
  lowHeap: number;
  lowArrayBuffers: number;
}

/** Why the calm changed, or null when it did not. */
export type CalmChange = { to: 'calm' } | { to: 'watch'; why: string } | null;

/**
 * Advances the calm by one checkpoint: its readings and why its analysis was not quiet (null if
 * it was, see quietAnalysis). Mutates `s` and returns the change, if any.
 *
 * @example
 * ```ts
 * const s: CalmState = { active: true, quiet: 5, lowHeap: 20e6, lowArrayBuffers: 1e5 };
 * stepCalm(s, { loud: null, heap: 22e6, arrayBuffers: 1e5 }); // → { to: 'watch', why: 'live heap rose 1.9 MiB …' }
 * ```
 */
export function stepCalm(s: CalmState, c: { loud: string | null; heap: number; arrayBuffers: number }, rules: CalmRules = CALM_RULES): CalmChange {
  s.quiet = c.loud === null ? s.quiet + 1 : 0;
  if (!s.active) {
    if (s.quiet < rules.confirm) return null;
    s.active = true;
    s.lowHeap = c.heap;
    s.lowArrayBuffers = c.arrayBuffers;
    return { to: 'calm' };
  }
  let why: string | undefined;
  if (c.heap - s.lowHeap > calmSlack(s.lowHeap, rules)) why = `live heap rose ${mib(c.heap - s.lowHeap)} since the calm's lowest reading`;
  else if (c.arrayBuffers - s.lowArrayBuffers > calmSlack(s.lowArrayBuffers, rules)) why = `ArrayBuffer memory rose ${mib(c.arrayBuffers - s.lowArrayBuffers)} since the calm's lowest reading`;
  else if (c.loud !== null) why = c.loud;
  if (why !== undefined) {
    s.active = false;
    s.quiet = 0;
    return { to: 'watch', why };
  }
  s.lowHeap = Math.min(s.lowHeap, c.heap);
  s.lowArrayBuffers = Math.min(s.lowArrayBuffers, c.arrayBuffers);
  return null;
}

/** Bytes in MiB, one decimal. */
export function mib(b: number): string {
  return `${(b / (1024 * 1024)).toFixed(1)} MiB`;
}

/**
 * What the app's own GCs said since the calm's last checkpoint. Between the calm's checkpoints,
 * minutes apart, the app's own collections still read how much it keeps, for nothing: a reading
 * well above the calm's lowest one brings the next checkpoint forward (a nudge), so the routine
 * checkpoints can stay rare without a leak going unseen for minutes.
 */
export interface NudgeState {
  /** Lowest old-generation bytes (all spaces but the young ones) read right after a forced GC in this calm. */
  lowOld: number;
  /** Lowest external memory read then. */
  lowExternal: number;
  /** When the app's last natural mark-compact ended (ms, any clock the readings share; -Infinity: none seen). */
  lastMajorAt: number;
  /** Nudges in this calm that the checkpoint did not confirm; each one doubles the margin. */
  misses: number;
}

/** A fresh nudge state, from the reading the calm began at (`lastMajorAt` carries over from before it). */
export function startNudge(old: number, external: number, lastMajorAt = -Infinity): NudgeState {
  return { lowOld: old, lowExternal: external, lastMajorAt, misses: 0 };
}

/**
 * The growth above the calm's lowest reading that nudges: the calm's slack (calmSlack), doubled
 * for each nudge the checkpoint did not confirm.
 */
export function nudgeMargin(low: number, misses: number, rules: CalmRules = CALM_RULES): number {
  return calmSlack(low, rules) * 2 ** Math.min(misses, 16);
}

/**
 * One natural GC's reading in the calm: why the next checkpoint should come now, or null.
 *
 * Which readings count: after a mark-compact, old-generation bytes are live data plus a few
 * hundred KB of what the marking left (Express at 200 req/s: natural readings 0.1-0.4 MB above
 * the forced ones, one every ~6 s). After a scavenge they also hold whatever garbage was promoted
 * since the last mark-compact (Express promoted ~1.1 MB/s; Fastify ~3 KB/s and had no natural
 * mark-compact in minutes). So a scavenge's reading counts only when the app has had no
 * mark-compact of its own for `rules.scavengeAfterMs`: an app that has them is read by them, one
 * that has none (a small app, or one whose leak is in large objects) by its scavenges. A nudge
 * the checkpoint does not confirm doubles the margin (promoted garbage), so false ones are few.
 *
 * @example
 * ```ts
 * const s = startNudge(9e6, 2e6);
 * calmNudge(s, { major: false, at: 1000, old: 9.5e6, external: 2e6 }); // → null: within 1 MiB
 * calmNudge(s, { major: false, at: 2000, old: 11e6, external: 2e6 }); // → 'a scavenge read old space 1.9 MiB above …'
 * ```
 */
export function calmNudge(s: NudgeState, g: { major: boolean; at: number; old: number; external: number }, rules: CalmRules = CALM_RULES): string | null {
  if (g.major) s.lastMajorAt = g.at;
  else if (g.at - s.lastMajorAt < rules.scavengeAfterMs) return null;
  const by = g.major ? 'a mark-compact' : 'a scavenge';
  const old = g.old - s.lowOld;
  if (old > nudgeMargin(s.lowOld, s.misses, rules)) return `${by} read old space ${mib(old)} above the calm's lowest reading`;
  const ext = g.external - s.lowExternal;
  if (ext > nudgeMargin(s.lowExternal, s.misses, rules)) return `${by} read external memory ${mib(ext)} above the calm's lowest reading`;
  return null;
}

/**
 * After a checkpoint that stayed in the calm: its forced reading may lower the calm's lowest one,
 * and if a nudge brought it, that nudge was false (the margin doubles).
 */
export function settleNudge(s: NudgeState, c: { old: number; external: number; nudged: boolean }): void {
  s.lowOld = Math.min(s.lowOld, c.old);
  s.lowExternal = Math.min(s.lowExternal, c.external);
  if (c.nudged) s.misses++;
}
