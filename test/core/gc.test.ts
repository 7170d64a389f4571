import test from 'node:test';
import assert from 'node:assert/strict';
import v8 from 'node:v8';
import { forceFullGc, liveDataHeap } from '../../src/core/gc';

function used(names: string[]): number {
  let sum = 0;
  for (const s of v8.getHeapSpaceStatistics()) if (names.includes(s.space_name)) sum += s.space_used_size;
  return sum;
}

const ENGINE = ['code_space', 'code_large_object_space', 'read_only_space', 'trusted_space', 'trusted_large_object_space',
  'shared_trusted_space', 'shared_trusted_large_object_space'];

// Node 24 keeps bytecode and code metadata in trusted_space; counting it made a probe of a
// 1,298 B/request leak read 1,500-1,650 B on about one run in nine (the JIT tiering up mid-probe).
test('regression: liveDataHeap leaves out the engine\'s code and bytecode spaces (Node 24 trusted_space)', () => {
  const all = v8.getHeapSpaceStatistics().map((s) => s.space_name);
  forceFullGc();
  const data0 = liveDataHeap();
  const engine0 = used(ENGINE);
  const total0 = used(all);
  const trusted0 = used(['trusted_space']);
  // 400 distinct functions, each run once so that it has bytecode, kept alive.
  const keep: Array<(x: number) => number> = [];
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  for (let i = 0; i < 400; i++) { const f = new Function('x', `let s = x; for (let k = 0; k < 3; k++) s += k * ${i}; return s;`) as (x: number) => number; f(i); keep.push(f); }
  forceFullGc();
  const dData = liveDataHeap() - data0;
  const dEngine = used(ENGINE) - engine0;
  const dTotal = used(all) - total0;
  assert.equal(keep.length, 400);
  // The engine spaces are left out: what the data heap gained is the total minus theirs.
  // (Within 2 KB: each reading allocates its own statistics objects in new space.)
  assert.ok(Math.abs(dData - (dTotal - dEngine)) < 2048, `data ${dData}, total ${dTotal}, engine spaces ${dEngine}`);
  // The functions themselves (closures, shared info, source) are data and still counted.
  assert.ok(dData > 400 * 50, `data heap grew ${dData} B`);
  if (all.includes('trusted_space')) {
    // Where the bytecode went on Node 22+: none of it reaches the data heap.
    const dTrusted = used(['trusted_space']) - trusted0;
    assert.ok(dTrusted > 400 * 20, `trusted_space grew ${dTrusted} B for 400 functions' bytecode`);
  }
});
