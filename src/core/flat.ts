/**
 * Returns `s` flattened, for strings kept for a long time.
 *
 * A string built by concatenation or a template literal is a tree of V8 cons strings, one node per
 * piece: a 72-character verdict reason kept that way took ~310 B, flat ~105 B; with a reason kept
 * on every route, ~0.2 MB of the tracker's memory at 1,000 routes (bench:memory). A regular
 * expression runs on flat strings only, so V8 flattens its subject in place, whichever tier runs
 * the caller. (`charCodeAt` flattened it too in a micro-benchmark, but nothing requires it to.)
 */
export function flat(s: string): string {
  ANY.test(s);
  return s;
}

const ANY = /^/;
