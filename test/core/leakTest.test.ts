import test from 'node:test';
import assert from 'node:assert/strict';
import { AssertionError } from 'node:assert';
import { randomBytes } from 'node:crypto';
import { leakTest, assertNoLeak } from '../../src/index';

// No --expose-gc here: node:test runs this file with plain `node --test`.

test('leakTest finds a 1 KB/call leak, counts it exactly and says where it is held', async () => {
  assert.equal(typeof (globalThis as { gc?: unknown }).gc, 'undefined');
  const kept: string[] = [];
  class Session { constructor(readonly token: string) {} }
  const sessions = new Map<number, Session>();
  let n = 0;
  const report = await leakTest(() => {
    kept.push(randomBytes(512).toString('hex')); // a flat 1 KB string
    sessions.set(n++, new Session('s'));
  }, { iterations: 30 });
  assert.equal(report.verdict, 'leaking');
  // 1,024 characters + 16 B header + the Session + Map and array growth.
  assert.ok(report.retainedBytesPerIteration > 1000 && report.retainedBytesPerIteration < 1400, `read ${report.retainedBytesPerIteration}`);
  const session = report.newObjects?.find((o) => o.constructor === 'Session');
  assert.ok(session, JSON.stringify(report.newObjects));
  // Exactly one per measured iteration: 30, or more when the runner read a period into the noise
  // and measured whole periods (seen once on Node 24 in CI: 55 of 55).
  assert.ok(report.measuredIterations >= 30, `measured ${report.measuredIterations}`);
  assert.equal(session.count, report.measuredIterations);
  assert.equal(session.countPerIteration, 1);
  assert.match(session.retainerPath ?? '', /sessions|Map/);
  assert.match(report.summary, /^ENTER: \d+ objects/m);
  assert.match(report.summary, /^LEAVE: \d+ objects/m);
  assert.match(report.summary, /!!! \d+ objects leaked !!!/);
  // B::LexInfo: the closure's Map grew by one entry around the last warm-up call.
  assert.match(report.scopeDiff ?? '', /^-\s+sessions: Map\(2\)$/m);
  assert.match(report.scopeDiff ?? '', /^\+\s+sessions: Map\(3\)$/m);
});

test('leakTest calls an allocation-heavy function that keeps nothing stable', async () => {
  let sink = 0;
  const report = await leakTest(async () => {
    const rows = [];
    for (let i = 0; i < 5000; i++) rows.push({ i, label: 'row-' + i, tags: [i, i + 1] });
    await new Promise<void>((r) => setImmediate(r));
    sink += rows.length;
  }, { iterations: 30, objects: false });
  assert.ok(sink > 0);
  assert.equal(report.verdict, 'stable', report.summary);
  assert.ok(Math.abs(report.retainedBytesPerIteration) < 64, `read ${report.retainedBytesPerIteration}`);
  assert.equal(report.newObjects, null);
  assert.match(report.summary, /^no leak: /m);
});

test('new globals are named (the seed: $$global = 1; ++$global)', async () => {
  let name = 'FooA';
  const report = await leakTest(() => {
    (globalThis as Record<string, unknown>)[name] = 1;
    name = name.slice(0, 3) + String.fromCharCode(name.charCodeAt(3) + 1);
  }, { iterations: 10, warmup: 1, objects: false });
  try {
    assert.equal(report.verdict, 'leaking');
    // Consecutive names: FooB.. after the warm-up runs (which may be extended until steady).
    // One per measured iteration: 10, or more when the run was extended to whole periods.
    assert.ok(report.measuredIterations >= 10);
    assert.equal(report.newGlobals.length, report.measuredIterations);
    const codes = report.newGlobals.map((g) => { assert.match(g, /^Foo.$/); return g.charCodeAt(3); });
    assert.deepEqual(codes, codes.map((_, i) => codes[0] + i));
    assert.match(report.scopeDiff ?? '', /^-\s+name: string "FooA" len=4\n\+\s+name: string "FooB" len=4$/m);
  } finally {
    for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZ') delete (globalThis as Record<string, unknown>)['Foo' + c];
  }
});

test('assertNoLeak throws an AssertionError carrying the summary, and passes a clean function', async () => {
  const kept: Buffer[] = [];
  await assert.rejects(
    assertNoLeak(() => { kept.push(Buffer.alloc(4096, 1)); }, { iterations: 20, objects: false }),
    (e: unknown) => {
      assert.ok(e instanceof AssertionError);
      assert.match(e.message, /leak detected/);
      assert.match(e.message, /ENTER: live heap/);
      assert.match(e.message, /external 4\.\d KB|external 4\d{3} B/);
      return true;
    },
  );
  const r = await assertNoLeak(() => JSON.stringify({ a: [1, 2, 3] }), { iterations: 20, objects: false });
  assert.equal(r.verdict, 'stable');
});

test('leakTest validates its options', async () => {
  await assert.rejects(leakTest(() => 1, { iterations: 0 }), /option "iterations" must be an integer from 1/);
  await assert.rejects(leakTest(() => 1, { objects: 'yes' as unknown as boolean }), /"objects" must be a boolean/);
  await assert.rejects(leakTest('nope' as unknown as () => void), /must be a function/);
});
