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

/**
 * Heap spaces that hold the engine's own code, not what the application keeps:
 * - `code_space`: JIT code. TurboFan installs optimised code on some iteration and drops it on a
 *   later one; in a 30-iteration probe every straddling jump of 30 to 250 KB was here, and
 *   between the detector's checkpoints it comes and goes in 150-200 KB spikes.
 * - `trusted_space` (V8 12 and later, Node 22+): bytecode, code metadata and deoptimisation data.
 *   On Node 24 it moved with code_space, 400 B to 3.7 KB at a time, on a third of the measured
 *   iterations of the zoo's Timeout leak. Counted, it made the probe read 1,500-1,650 B/iteration
 *   for a 1,298 B leak on 5 of 44 runs; left out, 20 of 20 read 1,304.
 * - `read_only_space`: the snapshot's immutable roots, which never change at run time.
 */
const ENGINE_SPACES = new Set([
  'code_space', 'code_large_object_space', 'read_only_space',
  'trusted_space', 'trusted_large_object_space', 'shared_trusted_space', 'shared_trusted_large_object_space',
]);

/**
 * Live JS heap without the engine's code spaces (see ENGINE_SPACES): the data a program keeps.
 * `spaces` is one reading of `v8.getHeapSpaceStatistics()`, taken here when not given.
 */
export function liveDataHeap(spaces: readonly v8.HeapSpaceInfo[] = v8.getHeapSpaceStatistics()): number {
  let sum = 0;
  for (const sp of spaces) if (!ENGINE_SPACES.has(sp.space_name)) sum += sp.space_used_size;
  return sum;
}
