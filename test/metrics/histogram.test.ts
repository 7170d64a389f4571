import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bucketOf, DeltaHistogram, HEAP_DELTA_BOUNDS } from '../../src/core/metrics/histogram';

/** The definition: the first bound the value does not exceed (HEAP_DELTA_BOUNDS.length past the top). */
function reference(v: number): number {
  let i = 0;
  while (i < HEAP_DELTA_BOUNDS.length && v > HEAP_DELTA_BOUNDS[i]) i++;
  return i;
}

test('bucketOf (clz32) agrees with the linear definition at every bound, around it and on seeded values up to 16 GB', () => {
  const values = [0.25, 0.5, 1, 2, 3, 1023.5];
  for (const b of HEAP_DELTA_BOUNDS) for (const d of [-1, -0.5, 0, 0.5, 1]) if (b + d > 0) values.push(b + d);
  let x = 99;
  for (let i = 0; i < 20_000; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    values.push(Math.floor(2 ** ((x / 2147483648) * 34)) + 1);
  }
  for (const v of values) assert.equal(bucketOf(v), reference(v), `value ${v}`);
});

test('DeltaHistogram: negative deltas count in le="0" and not in sum; cumulative counts end at count', () => {
  const h = new DeltaHistogram();
  for (const v of [-5000, 0, 1, 1024, 1025, 70_000, 5e9]) h.observe(v);
  assert.equal(h.count, 7);
  assert.equal(h.sum, 1 + 1024 + 1025 + 70_000 + 5e9);
  const c = h.cumulative();
  assert.equal(c.length, HEAP_DELTA_BOUNDS.length + 1);
  assert.deepEqual(c, [2, 4, 5, 5, 5, 6, 6, 6, 6, 6, 7]);
});
