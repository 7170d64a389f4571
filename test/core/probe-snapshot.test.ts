import test from 'node:test';
import assert from 'node:assert/strict';
import { writeSnapshot, diffSnapshots, removeQuietly, checkSnapshotMemory, SnapshotRefusedError } from '../../src/core/probe/snapshot';

class ProbeMarkerLeak {
  constructor(readonly note: string) {}
}

test('two snapshots diffed by node id: exactly the objects made in between and still alive, with a retainer path', async () => {
  const holder = { registry: new Map<number, ProbeMarkerLeak>() };
  (globalThis as Record<string, unknown>).__probeSnapshotTestHolder = holder;
  let first: string | undefined;
  let second: string | undefined;
  try {
    for (let i = 0; i < 5; i++) holder.registry.set(i, new ProbeMarkerLeak('before'));
    first = writeSnapshot('test-a');
    for (let i = 5; i < 55; i++) holder.registry.set(i, new ProbeMarkerLeak('a "quoted" \\ note ✓ ' + i));
    for (let i = 0; i < 1000; i++) void new ProbeMarkerLeak('garbage'); // transient: must not count
    second = writeSnapshot('test-b');
    const d = await diffSnapshots(first, second, 60_000);
    assert.ok(d.first.maxId > 0 && d.first.userObjects > 1000);
    const g = d.second.groups.find((x) => x.constructor === 'ProbeMarkerLeak');
    assert.ok(g, JSON.stringify(d.second.groups.slice(0, 5)));
    assert.equal(g.count, 50);
    assert.match(g.retainerPath ?? '', /__probeSnapshotTestHolder \(Object\) → registry \(Map\)/);
    assert.ok(d.second.newUserObjects >= 50);
  } finally {
    delete (globalThis as Record<string, unknown>).__probeSnapshotTestHolder;
    removeQuietly(first);
    removeQuietly(second);
  }
});

test('a snapshot is refused with a clear message when memory is short', () => {
  assert.throws(() => checkSnapshotMemory(1024 * 1024), (e: unknown) => {
    assert.ok(e instanceof SnapshotRefusedError);
    assert.match(e.message, /not enough free memory for a heap snapshot: it needs about \d+ MB .* only 1 MB is available/);
    return true;
  });
  assert.doesNotThrow(() => checkSnapshotMemory(64 * 1024 * 1024 * 1024));
});
