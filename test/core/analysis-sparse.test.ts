import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyzeWindow } from '../../src/core/analysis/checkpoints';
import { mulberry32 } from '../helpers';

// 14 routes over 27 checkpoints: one more than the full regression's minimum, the zoo's situation.
// Route 5 keeps a 4 KB Buffer per request (external memory), route 0 adds one global per request;
// the heap carries 20 KB of checkpoint noise and nothing else.
function window(seed: number): Parameters<typeof analyzeWindow>[0] {
  const rng = mulberry32(seed);
  const R = 14;
  const L = 27;
  const counts = Array.from({ length: R }, () => [0]);
  for (let k = 1; k < L; k++) {
    const hot = Math.floor(rng() * R);
    for (let r = 0; r < R; r++) counts[r].push(counts[r][k - 1] + Math.floor(rng() * 10) + (r === hot ? 15 : 0));
  }
  const heap = Array.from({ length: L }, () => 30e6 + (rng() - 0.5) * 40e3);
  const external = counts[5].map((n) => 1e6 + 4096 * n + (rng() - 0.5) * 4e3);
  const globals = counts[0].map((n) => 200 + n);
  return { heap, external, counts, objects: { globals } };
}

test('sparse fits: a Buffer-per-request route and a global-per-request route stand out among 14 routes, nobody else grows', () => {
  for (let seed = 1; seed <= 10; seed++) {
    const a = analyzeWindow(window(seed));
    const ext = a.routes[5].evidence.external!.all;
    assert.ok(Math.abs(ext.estimate / 4096 - 1) < 0.1, `seed ${seed}: ${ext.estimate}`);
    assert.equal(a.routes[5].verdict.verdict, 'growing', `seed ${seed}: ${a.routes[5].verdict.reason}`);
    assert.equal(a.routes[0].verdict.verdict, 'growing', `seed ${seed}: ${a.routes[0].verdict.reason}`);
    for (let r = 1; r < 14; r++) if (r !== 5) assert.notEqual(a.routes[r].verdict.verdict, 'growing', `seed ${seed} route ${r}: ${a.routes[r].verdict.reason}`);
  }
});
