/**
 * leakwatch core: the framework-free monitor, types and helpers for test suites.
 * Framework adapters live at `leakwatch/express` and `leakwatch/fastify`.
 */
export { LeakMonitor, createMonitor, PROBE_HEADER } from './core/monitor';
export type { Feature } from './core/monitor';
export { resolveOptions } from './core/options';
export { UNMATCHED, OVERFLOW } from './core/recorder';
export type { RouteStats, RequestState } from './core/recorder';
export type { RouteSummary } from './core/summary';
export type { LeakwatchOptions, ResolvedOptions, Verdict, Mode, CapturedRequest, RetentionEstimate, ProcessFindings } from './core/types';
export { leakTest, assertNoLeak } from './core/leakTest';
export type { LeakTestOptions, LeakTestReport, ProbeReport, NewObjectEntry } from './core/leakTest';
