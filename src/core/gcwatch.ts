import { PerformanceObserver, constants, performance } from 'node:perf_hooks';
import v8 from 'node:v8';

export interface GcEvent {
  /** ms since the Unix epoch. */
  at: number;
  kind: 'minor' | 'major' | 'incremental' | 'weakcb' | 'unknown';
  durationMs: number;
  forced: boolean;
  /**
   * Old-generation bytes read in the observer callback. Exact after scavenges and within a few
   * hundred KB after mark-sweeps (entries arrive batched); only major entries approximate live heap.
   */
  oldGenBytes: number;
}

type Listener = (e: GcEvent) => void;

const KIND: Record<number, GcEvent['kind']> = {
  [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
  [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
  [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
  [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weakcb',
};

const YOUNG = new Set(['new_space', 'new_large_object_space']);

/** Bytes in every heap space but the young ones: what a GC event's `oldGenBytes` reads. */
export function oldGenBytes(spaces: readonly v8.HeapSpaceInfo[] = v8.getHeapSpaceStatistics()): number {
  let sum = 0;
  for (const s of spaces) if (!YOUNG.has(s.space_name)) sum += s.space_used_size;
  return sum;
}

/**
 * One process-wide GC observer shared by every monitor: observers are not free, and two
 * monitors (two apps in one process) must not double the work.
 */
class GcWatch {
  /** Count of GCs seen so far; compared before and after a request to flag "a GC ran during it". */
  count = 0;
  majorCount = 0;
  private observer: PerformanceObserver | undefined;
  private listeners = new Set<Listener>();
  private users = 0;

  acquire(): void {
    if (this.users++ > 0) return;
    this.observer = new PerformanceObserver((list) => {
      // Reading heap spaces once per batch keeps the callback cheap.
      let old = -1;
      for (const entry of list.getEntries()) {
        const detail = (entry as unknown as { detail?: { kind?: number; flags?: number } }).detail ?? {};
        const kind = KIND[detail.kind ?? -1] ?? 'unknown';
        this.count++;
        if (kind === 'major') this.majorCount++;
        if (this.listeners.size === 0) continue;
        const forced = ((detail.flags ?? 0) & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0;
        if (forced && this.quietForced > 0) continue;
        if (old < 0) old = oldGenBytes();
        const event: GcEvent = {
          at: performance.timeOrigin + entry.startTime,
          kind,
          durationMs: entry.duration,
          forced,
          oldGenBytes: old,
        };
        for (const l of this.listeners) {
          try { l(event); } catch { /* a listener's fault must not stop GC accounting */ }
        }
      }
    });
    this.observer.observe({ entryTypes: ['gc'] });
  }

  release(): void {
    if (--this.users > 0) return;
    this.users = 0;
    this.observer?.disconnect();
    this.observer = undefined;
  }

  private quietForced = 0;

  /**
   * While a probe runs, forced GCs are counted but not passed to listeners: they are the probe's,
   * not the app's, and a listener that keeps each event (the GC history ring) would otherwise
   * grow by one event per probe iteration, which the probe reads as retention (measured: 112 B
   * per iteration on a route that keeps nothing). Returns the function that ends the quiet.
   */
  quiet(): () => void {
    this.quietForced++;
    let ended = false;
    return () => { if (!ended) { ended = true; this.quietForced--; } };
  }

  on(l: Listener): () => void {
    this.listeners.add(l);
    return () => { this.listeners.delete(l); };
  }
}

export const gcWatch = new GcWatch();
