import { gcWatch, type GcEvent } from '../gcwatch';

/** One GC as the GC history page shows it. */
export interface GcRow extends GcEvent {}

export interface GcSummary {
  kind: GcEvent['kind'];
  count: number;
  totalMs: number;
  maxMs: number;
}

/**
 * A bounded ring of the last GC events, fed by the shared GC observer. Memory is fixed: `size`
 * events at most, whatever the GC rate.
 *
 * @example
 * ```ts
 * const h = new GcHistory(256);
 * // … later
 * h.events().at(-1)?.kind; // "minor"
 * h.close();
 * ```
 */
export class GcHistory {
  private readonly ring: Array<GcEvent | undefined>;
  private next = 0;
  total = 0;
  readonly since = Date.now();
  private readonly totals = new Map<GcEvent['kind'], GcSummary>();
  private readonly off: () => void;

  constructor(readonly size = 256) {
    this.ring = new Array<GcEvent | undefined>(size);
    this.off = gcWatch.on((e) => this.add(e));
  }

  add(e: GcEvent): void {
    this.ring[this.next] = e;
    this.next = (this.next + 1) % this.size;
    this.total++;
    let s = this.totals.get(e.kind);
    if (!s) { s = { kind: e.kind, count: 0, totalMs: 0, maxMs: 0 }; this.totals.set(e.kind, s); }
    s.count++;
    s.totalMs += e.durationMs;
    if (e.durationMs > s.maxMs) s.maxMs = e.durationMs;
  }

  /** Oldest first. */
  events(): GcEvent[] {
    const out: GcEvent[] = [];
    for (let i = 0; i < this.size; i++) {
      const e = this.ring[(this.next + i) % this.size];
      if (e) out.push(e);
    }
    return out;
  }

  /** Counts and pause times by kind since the history started (not bounded by the ring). */
  summary(): GcSummary[] {
    return [...this.totals.values()].map((s) => ({ ...s })).sort((a, b) => b.count - a.count);
  }

  close(): void {
    this.off();
  }
}
