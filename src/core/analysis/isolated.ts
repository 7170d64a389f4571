import { median } from './linalg';

/** A location estimate from isolated samples (bytes kept by one request run alone). */
export interface IsolatedEstimate {
  /** Samples used (those taken with the held set unchanged). */
  n: number;
  /** Huber M-estimate of the bytes one request keeps. */
  estimate: number;
  /** Its standard error (robust scale / √n, with Huber's efficiency factor). */
  se: number;
  low: number;
  high: number;
  /** estimate / se (0 when se is not finite). */
  z: number;
}

export interface IsolatedSummary {
  all: IsolatedEstimate;
  /** The most recent half of the samples: still keeping lately, or was it a fill-up? */
  recent?: IsolatedEstimate;
  /** Samples rejected because other requests arrived or left during them. */
  rejected: number;
}

export interface IsolatedOptions {
  /** Smallest robust scale in bytes (readings move in steps of a few hundred bytes). Default 128. */
  minScale?: number;
  /** Huber's tuning constant, in scales. Default 1.5. */
  k?: number;
}

/**
 * Huber M-estimate of location with a MAD scale: the bulk of isolated readings sits within a few
 * hundred bytes of the truth, while a few are off by tens of KB (something unrelated freed or
 * allocated during the sample). A plain mean drowns in those; a Huber estimate follows the bulk.
 * The price: a leak on every Nth request only shows as rare large readings, which this estimate
 * discounts; such leaks are left to the checkpoint regression.
 *
 * @example
 * ```ts
 * huberLocation([1040, 1100, 980, 1030, -9000, 1010]).estimate; // ≈ 1030
 * ```
 */
export function huberLocation(xs: ArrayLike<number>, options: IsolatedOptions = {}): IsolatedEstimate {
  const n = xs.length;
  const minScale = options.minScale ?? 128;
  const k = options.k ?? 1.5;
  if (n === 0) return { n: 0, estimate: 0, se: Infinity, low: -Infinity, high: Infinity, z: 0 };
  let mu = median(xs);
  const dev = Array.from(xs, (x) => Math.abs(x - mu));
  const scale = Math.max(minScale, 1.4826 * median(dev));
  for (let it = 0; it < 30; it++) {
    let sw = 0;
    let swx = 0;
    for (let i = 0; i < n; i++) {
      const u = Math.abs(xs[i] - mu) / scale;
      const w = u <= k ? 1 : k / u;
      sw += w;
      swx += w * xs[i];
    }
    const next = swx / sw;
    if (Math.abs(next - mu) < 1e-6 * scale) { mu = next; break; }
    mu = next;
  }
  // Asymptotic variance of Huber's estimate: E[ψ²] / E[ψ']², with ψ the clipped residual.
  let psi2 = 0;
  let inside = 0;
  for (let i = 0; i < n; i++) {
    const u = (xs[i] - mu) / scale;
    const c = Math.max(-k, Math.min(k, u));
    psi2 += c * c;
    if (Math.abs(u) <= k) inside++;
  }
  const se = n >= 2 && inside > 0 ? (scale * Math.sqrt(psi2 / n)) / (inside / n) / Math.sqrt(n - 1) : Infinity;
  const z = Number.isFinite(se) && se > 0 ? mu / se : 0;
  return { n, estimate: mu, se, low: mu - 1.96 * se, high: mu + 1.96 * se, z };
}

/**
 * Summarises a route's isolated samples, oldest first. Only samples with `arrivals === 1` count:
 * held requests are alive, so a sample is clean when one request arrived to take the released
 * one's place (the held set is the same at both readings).
 *
 * @example
 * ```ts
 * const s = summarizeIsolated([900, 1100, 1000, 1050], [1, 1, 1, 1]);
 * s.all.estimate; // ≈ 1030
 * ```
 */
export function summarizeIsolated(heap: ArrayLike<number>, arrivals: ArrayLike<number>, options: IsolatedOptions = {}): IsolatedSummary {
  const kept: number[] = [];
  for (let i = 0; i < heap.length; i++) if (arrivals[i] === 1) kept.push(heap[i]);
  const all = huberLocation(kept, options);
  const half = kept.slice(Math.floor(kept.length / 2));
  return { all, recent: half.length >= 3 ? huberLocation(half, options) : undefined, rejected: heap.length - kept.length };
}
