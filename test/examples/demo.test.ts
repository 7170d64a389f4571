import { test } from 'node:test';
import assert from 'node:assert/strict';
import { get } from '../helpers';
import { startDemo } from '../dashboard/demo';

// The README promises that `npm start` shows something real within seconds: the demo's own
// traffic must make at least one zoo leak `growing` next to `stable`/`warming-up` controls
// within 30 s (typically ~18 s here), and no control may ever be called growing or leaking.
test('regression: the demo shows a growing route next to stable or warming-up ones within 30 s of start', { timeout: 60_000 }, async () => {
  const t0 = Date.now();
  const demo = await startDemo(200); // npm start's default rate
  assert.ok(demo, 'examples/demo/server.js exists');
  const controls = new Set(['/zoo/lru', '/zoo/lazy-init', '/zoo/transient', '/zoo/grow-shrink', '/zoo/memo', '/zoo/hello/:name']);
  try {
    let seenAt: number | null = null;
    let last: Array<{ route: string; verdict: string }> = [];
    while (Date.now() - t0 < 30_000) {
      last = (await get(demo.port, '/__leaks/api/routes')).json().routes;
      for (const r of last) {
        if (controls.has(r.route)) assert.ok(r.verdict !== 'growing' && r.verdict !== 'leaking', `control ${r.route} is ${r.verdict}`);
      }
      const growing = last.filter((r) => r.verdict === 'growing' || r.verdict === 'leaking');
      const calm = last.filter((r) => r.verdict === 'stable' || r.verdict === 'warming-up');
      if (growing.length > 0 && calm.length > 0) { seenAt = Date.now() - t0; break; }
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(seenAt !== null, `no growing route within 30 s: ${JSON.stringify(last.map((r) => `${r.route}=${r.verdict}`))}`);
  } finally {
    await demo.close();
  }
});
