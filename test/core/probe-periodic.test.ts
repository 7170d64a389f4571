import test from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { leakTest } from '../../src/index';
import { median } from '../../src/core/probe/estimate';

// The zoo's every-10th leak without the HTTP server: every 10th call keeps a flat 10,240-character
// string (10,256 B) and drops the 5 KB Buffer it was made from. Precise figures for the probe over
// HTTP are in `npm run bench:probe`; these margins are wide enough not to flake on a busy machine.

function every10th(): { fn: () => number; kept: string[] } {
  const kept: string[] = [];
  let calls = 0;
  return { kept, fn: () => { if (++calls % 10 === 0) kept.push(randomBytes(5120).toString('hex')); return kept.length; } };
}

test('a leak every 10th call is read over five whole periods, near its truth', async () => {
  const { fn } = every10th();
  const r = await leakTest(fn, { iterations: 30, objects: false });
  assert.equal(r.verdict, 'leaking', r.reason);
  assert.equal(r.period, 10, r.bytesPerIterationSeries.join(' '));
  assert.equal(r.iterations, 30);
  assert.equal(r.measuredIterations, 50);
  assert.equal(r.bytesPerIterationSeries.length, 50);
  const truth = 10_256 / 10;
  assert.ok(Math.abs(r.retainedBytesPerIteration - truth) <= 0.15 * truth, `read ${r.retainedBytesPerIteration}: ${r.bytesPerIterationSeries.join(' ')}`);
  assert.match(r.reason, /a step every 10 iterations/);
  assert.match(r.summary, /after 50 iterations/);
});

test("a dropped Buffer leaves external memory on its own iteration: the step reads the string alone", async () => {
  const { fn } = every10th();
  const r = await leakTest(fn, { iterations: 50, objects: false });
  assert.equal(r.period, 10, r.bytesPerIterationSeries.join(' '));
  // The step's phase: the one whose median across periods is the largest.
  const phases = Array.from({ length: 10 }, (_, k) => median(r.bytesPerIterationSeries.filter((_, i) => i % 10 === k)));
  const step = Math.max(...phases);
  // Without the second GC the step read +15,376 (string and the Buffer not yet swept) and the
  // Buffer came back as -5,120 one or two iterations later.
  assert.ok(Math.abs(step - 10_256) < 1_000, `phase medians ${phases.join(' ')}: ${r.bytesPerIterationSeries.join(' ')}`);
});

test('dropping a 5 KB Buffer every 10th call keeps nothing', async () => {
  let calls = 0;
  let sink = 0;
  const r = await leakTest(() => { if (++calls % 10 === 0) sink += randomBytes(5120).toString('hex').length; return sink; }, { iterations: 30, objects: false });
  assert.equal(r.verdict, 'stable', `${r.reason}: ${r.bytesPerIterationSeries.join(' ')}`);
  assert.equal(r.period, 0);
  assert.equal(r.measuredIterations, 30);
});
