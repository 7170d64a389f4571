/**
 * Upper bounds (bytes) of the per-request heap-delta histogram: powers of four from 1 KiB to
 * 64 MiB, plus 0. A request's heap delta is mostly the garbage it made (MEASURING.md §2: a 100 KB
 * garbage request reads about +112 KB), so the interesting range spans kilobytes to megabytes and
 * powers of four cover it with few series per route (13 with _sum and _count).
 */
export const HEAP_DELTA_BOUNDS: readonly number[] = Object.freeze([
  0, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
]);

const N = HEAP_DELTA_BOUNDS.length;
const TOP = HEAP_DELTA_BOUNDS[N - 1];
/** Bytes of a DeltaHistogram's counts, for callers that give it a slice of their own buffer. */
export const DELTA_HISTOGRAM_BYTES = (N + 1) * 8;

/**
 * Index of the bucket of a positive delta, without a loop: the bounds after 0 are 4^5 … 4^13, so
 * the index follows from ceil(log2(bytes)), which Math.clz32 gives in one instruction. A linear
 * scan over the bounds measured about 3x slower on realistic, unpredictable deltas.
 */
export function bucketOf(bytes: number): number {
  if (bytes > TOP) return N;
  const log2 = 32 - Math.clz32(Math.ceil(bytes) - 1);
  return log2 <= 10 ? 1 : ((log2 - 9) >> 1) + 1;
}

/**
 * Cumulative bucket counters for one route's per-request heap deltas, filled on the request path
 * and read at scrape time. Fixed size (11 slots), so recording never allocates.
 *
 * Negative deltas (a GC ran during the request) land in the `le="0"` bucket and add nothing to
 * `sum`: that keeps `_sum` monotonic, which Prometheus' `rate()` needs.
 *
 * @example
 * ```ts
 * const h = new DeltaHistogram();
 * h.observe(3000); // counted in the le="4096" bucket
 * h.counts;        // per-bucket (non-cumulative) counts; the last slot is +Inf
 * ```
 */
export class DeltaHistogram {
  /** Non-cumulative counts per bucket of HEAP_DELTA_BOUNDS; the last slot is above the top bound. */
  readonly counts: Float64Array;
  /** Sum of the positive deltas only. */
  sum = 0;
  count = 0;

  /** `buffer`, when given, holds the counts at `byteOffset` (DELTA_HISTOGRAM_BYTES of it). */
  constructor(buffer?: ArrayBuffer, byteOffset = 0) {
    this.counts = buffer === undefined ? new Float64Array(N + 1) : new Float64Array(buffer, byteOffset, N + 1);
  }

  observe(bytes: number): void {
    this.count++;
    if (bytes > 0) {
      this.sum += bytes;
      this.counts[bucketOf(bytes)]++;
    } else {
      this.counts[0]++;
    }
  }

  /** Cumulative counts for each bound, then +Inf, as Prometheus exposes them. Allocates: scrape time only. */
  cumulative(): number[] {
    const out = new Array<number>(N + 1);
    let acc = 0;
    for (let i = 0; i <= N; i++) {
      acc += this.counts[i];
      out[i] = acc;
    }
    return out;
  }
}
