/**
 * Tiny dense linear algebra for the regression: a few dozen unknowns at most, so plain arrays and
 * O(p³) methods are fine and keep leakwatch free of native or numeric dependencies.
 */

/** A symmetric p×p matrix stored row-major in a Float64Array. */
export type Sym = Float64Array;

/**
 * Inverts a symmetric positive (semi-)definite matrix by Cholesky after adding `ridge` to the
 * diagonal, so a column that never varied yields a huge variance instead of a crash.
 * Returns undefined if the matrix is not positive definite even with the ridge.
 *
 * @example
 * ```ts
 * invertSym(Float64Array.of(4, 0, 0, 2), 2); // → [0.25, 0, 0, 0.5]
 * ```
 */
export function invertSym(a: Sym, p: number, ridge = 0): Float64Array | undefined {
  const l = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * p + j] + (i === j ? ridge : 0);
      for (let k = 0; k < j; k++) s -= l[i * p + k] * l[j * p + k];
      if (i === j) {
        if (!(s > 0)) return undefined;
        l[i * p + i] = Math.sqrt(s);
      } else {
        l[i * p + j] = s / l[j * p + j];
      }
    }
  }
  // inv(L) then inv(A) = inv(L)ᵀ inv(L)
  const li = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    li[i * p + i] = 1 / l[i * p + i];
    for (let j = 0; j < i; j++) {
      let s = 0;
      for (let k = j; k < i; k++) s -= l[i * p + k] * li[k * p + j];
      li[i * p + j] = s / l[i * p + i];
    }
  }
  const inv = new Float64Array(p * p);
  for (let i = 0; i < p; i++) {
    for (let j = 0; j <= i; j++) {
      let s = 0;
      for (let k = i; k < p; k++) s += li[k * p + i] * li[k * p + j];
      inv[i * p + j] = s;
      inv[j * p + i] = s;
    }
  }
  return inv;
}

/**
 * Non-negative least squares on the normal equations: minimises ½bᵀGb − cᵀb with b ≥ 0 by
 * cyclic coordinate descent, which converges for any positive semi-definite G and needs no
 * factorisation. Retention cannot be negative, and the constraint stops two collinear routes
 * from trading a large positive against a large negative estimate.
 *
 * @example
 * ```ts
 * nnlsNormal(Float64Array.of(1, 0, 0, 1), Float64Array.of(3, -2), 2); // → [3, 0]
 * ```
 */
export function nnlsNormal(g: Sym, c: Float64Array, p: number, iterations = 500): Float64Array {
  const b = new Float64Array(p);
  for (let it = 0; it < iterations; it++) {
    let moved = 0;
    for (let j = 0; j < p; j++) {
      const gjj = g[j * p + j];
      if (!(gjj > 0)) { b[j] = 0; continue; }
      let s = c[j];
      for (let k = 0; k < p; k++) if (k !== j) s -= g[j * p + k] * b[k];
      const next = Math.max(0, s / gjj);
      moved = Math.max(moved, Math.abs(next - b[j]) * Math.sqrt(gjj));
      b[j] = next;
    }
    if (moved < 1e-9) break;
  }
  return b;
}

/** Median of a copy of `xs` (NaN for an empty list). */
export function median(xs: ArrayLike<number>): number {
  const a = Array.from(xs).sort((x, y) => x - y);
  const n = a.length;
  if (n === 0) return NaN;
  return n % 2 === 1 ? a[(n - 1) / 2] : (a[n / 2 - 1] + a[n / 2]) / 2;
}
