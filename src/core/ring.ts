/**
 * A fixed-size ring of numbers. Memory is allocated once, so recording never grows the heap.
 */
export class Ring {
  readonly data: Float64Array | Float32Array;
  private next = 0;
  /** How many values were ever pushed (not capped at capacity). */
  total = 0;

  /**
   * `float32` halves the memory (per-route rings are most of the tracker's memory: 3 rings ×
   * 128 samples × 8 B = 3 KB a route) and is exact for integers up to 16 M.
   */
  constructor(readonly capacity: number, precision: 'float64' | 'float32' = 'float64', buffer?: ArrayBuffer, byteOffset = 0) {
    // A caller keeping several rings may give them one buffer: each ArrayBuffer of their own
    // costs ~88 B of JS heap beside its data (bench:memory).
    const b = buffer ?? new ArrayBuffer(capacity * (precision === 'float32' ? 4 : 8));
    this.data = precision === 'float32' ? new Float32Array(b, byteOffset, capacity) : new Float64Array(b, byteOffset, capacity);
  }

  push(value: number): void {
    this.data[this.next] = value;
    this.next = this.next + 1 === this.capacity ? 0 : this.next + 1;
    this.total++;
  }

  get length(): number {
    return this.total < this.capacity ? this.total : this.capacity;
  }

  /** Oldest first. Allocates: call it when rendering, not per request. */
  toArray(): number[] {
    const n = this.length;
    const out = new Array<number>(n);
    const start = this.total < this.capacity ? 0 : this.next;
    for (let i = 0; i < n; i++) out[i] = this.data[(start + i) % this.capacity];
    return out;
  }

  last(): number | undefined {
    if (this.total === 0) return undefined;
    return this.data[(this.next + this.capacity - 1) % this.capacity];
  }
}
