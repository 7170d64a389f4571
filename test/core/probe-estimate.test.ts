import test from 'node:test';
import assert from 'node:assert/strict';
import { estimateSlope, isLeaking, trimmedMean } from '../../src/core/probe/estimate';
import { unifiedDiff } from '../../src/core/probe/diff';
import { parseProbeParams, handlerFunctions } from '../../src/core/probe/index';
import { HttpError } from '../../src/core/http/respond';

/** Cumulative series from per-iteration differences, starting at 10 MB. */
function series(diffs: number[]): number[] {
  const out = [10_000_000];
  for (const d of diffs) out.push(out[out.length - 1] + d);
  return out;
}

/** Deterministic noise: a fixed LCG, so these tests never flake. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return s / 4294967296; };
}

test('a steady leak reads exactly, even with one backing-store doubling in the window', () => {
  const d = Array.from({ length: 30 }, () => 1040);
  d[17] += 16_384; // a Map/array backing store doubling: a one-off, not per iteration
  const e = estimateSlope(series(d));
  assert.equal(Math.round(e.perIteration), 1040);
  assert.deepEqual(e.excluded, [17]);
  assert.ok(isLeaking(e, 64));
});

test('a route that keeps nothing is stable despite one-off jumps and transients straddling a GC', () => {
  const d = Array.from({ length: 30 }, () => 0);
  d[3] = 9_000; // JIT warm-up
  d[12] = 66_144; d[13] = -61_248; // allocated on one iteration, freed on the next
  d[20] = -4_000;
  const e = estimateSlope(series(d));
  assert.ok(Math.abs(e.perIteration) < 1, `read ${e.perIteration}`);
  assert.equal(isLeaking(e, 64), false);
});

test('a leak every 10th iteration is found, with its give-back on the following iterations', () => {
  const d = Array.from({ length: 30 }, () => 0);
  for (const i of [4, 14, 24]) { d[i] = 15_376; d[i + 1] = -4_208; d[i + 2] = -912; }
  const e = estimateSlope(series(d));
  assert.ok(Math.abs(e.perIteration - 1025.6) < 1, `read ${e.perIteration}`);
  assert.equal(e.periodicSteps, 3);
  assert.ok(isLeaking(e, 64));
});

test('two similar jumps are not a pattern: JIT noise is not read as a periodic leak', () => {
  const d = Array.from({ length: 30 }, () => 0);
  d[4] = 4_328; d[18] = 2_880;
  const e = estimateSlope(series(d));
  assert.equal(e.periodicSteps, 0);
  assert.equal(isLeaking(e, 64), false);
});

test('data that grows and shrinks at random is not a leak; a noisy real leak still is', () => {
  const rnd = lcg(7);
  const flat = Array.from({ length: 30 }, () => Math.round((rnd() - 0.5) * 4_000));
  assert.equal(isLeaking(estimateSlope(series(flat)), 64), false);
  const leak = Array.from({ length: 30 }, () => 2_000 + Math.round((rnd() - 0.5) * 800));
  const e = estimateSlope(series(leak));
  assert.ok(isLeaking(e, 64));
  assert.ok(Math.abs(e.perIteration - 2_000) < 200, `read ${e.perIteration}`);
});

test('trimmedMean ignores the tails', () => {
  const t = trimmedMean([1, 1, 1, 1, 1, 1, 1, 1, 100, -100], 0.2);
  assert.equal(t.mean, 1);
});

test('unifiedDiff gives a diff -u listing, and nothing for equal listings', () => {
  const a = ['f()', '  Closure', '    name: string "FooB" len=4', '    n: number 1'];
  const b = ['f()', '  Closure', '    name: string "FooC" len=4', '    n: number 1'];
  assert.equal(unifiedDiff(a, a), '');
  const d = unifiedDiff(a, b);
  assert.match(d, /^--- before\n\+\+\+ after\n@@ -1,4 \+1,4 @@\n/);
  assert.ok(d.includes('-    name: string "FooB" len=4\n+    name: string "FooC" len=4\n'));
});

test('probe bodies: defaults, range and type errors name the field', () => {
  const p = parseProbeParams({ method: 'get', route: '/users/:id' });
  assert.deepEqual([p.method, p.iterations, p.warmup, p.unsafe, p.objects], ['GET', 30, 3, false, true]);
  const bad = (b: Record<string, unknown>, re: RegExp): void => {
    assert.throws(() => parseProbeParams(b), (e: unknown) => e instanceof HttpError && e.status === 400 && re.test(e.message));
  };
  bad({ method: 'GET', route: '/x', iterations: 0 }, /"iterations"/);
  bad({ method: 'GET', route: '/x', iterations: 1001 }, /"iterations"/);
  bad({ method: 'GET', route: '/x', iterations: '30' }, /"iterations"/);
  bad({ method: 'GET', route: '/x', unsafe: 'yes' }, /"unsafe"/);
  bad({ method: 'GET' }, /"route"/);
  bad({ method: 7, route: '/x' }, /"method"/);
  bad({ method: 'GET', route: '/x', bogus: 1 }, /unknown field "bogus"/);
  // Form posts carry strings.
  assert.equal(parseProbeParams({ method: 'GET', route: '/x', iterations: '12', _token: 't' }, true).iterations, 12);
});

test('handler functions are read from an Express Route or a Fastify handler', () => {
  function a(): void { /* */ }
  function b(): void { /* */ }
  assert.deepEqual(handlerFunctions({ stack: [{ handle: a }, { handle: b }, { handle: 1 }] }), [a, b]);
  assert.deepEqual(handlerFunctions(a), [a]);
  assert.deepEqual(handlerFunctions(undefined), []);
});
