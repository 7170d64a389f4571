export { LeakMonitor, createMonitor, PROBE_HEADER, resolveOptions, UNMATCHED, OVERFLOW } from '../index.js';
export type * from '../index.js';
export { leakTest, assertNoLeak } from '../index.js';
