import v8 from 'node:v8';
import vm from 'node:vm';

let cached: ((opts?: unknown) => void) | undefined;

/**
 * Returns V8's `gc` function without `--expose-gc` on the command line and without putting
 * `gc` on globalThis (which would show up as a new global in our own reports). Setting the flag
 * at run time and reading `gc` from a fresh context is about twice as fast as the inspector's
 * `HeapProfiler.collectGarbage`, which runs two full GCs (see MEASURING.md §4).
 */
export function getGc(): (opts?: unknown) => void {
  if (cached) return cached;
  const existing = (globalThis as { gc?: (opts?: unknown) => void }).gc;
  if (typeof existing === 'function') {
    cached = existing;
    return cached;
  }
  v8.setFlagsFromString('--expose-gc');
  cached = vm.runInNewContext('gc') as (opts?: unknown) => void;
  return cached;
}

/** A synchronous full (mark-compact) GC. Blocks the event loop for tens to hundreds of ms. */
export function forceFullGc(): void {
  getGc()();
}

/** Live JS heap and external memory right after a forced full GC. */
export function liveHeapAfterGc(): { heapUsed: number; external: number; arrayBuffers: number } {
  forceFullGc();
  const hs = v8.getHeapStatistics() as v8.HeapInfo & { external_memory?: number };
  const mu = process.memoryUsage();
  return { heapUsed: hs.used_heap_size, external: mu.external, arrayBuffers: mu.arrayBuffers };
}
