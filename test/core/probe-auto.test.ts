import test from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import express from 'express';
import { leakwatch } from '../../src/express/index';
import type { HttpProbeReport } from '../../src/core/probe/index';
import { repoRoot, get, listen, close } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const zoo = require(path.join(repoRoot, 'examples', 'zoo', 'index.js')) as { mountExpress(app: unknown): unknown; reset(): void };

test('autoProbe: a GET route that turns growing is probed at the next idle moment, once per cooldown', async (t) => {
  zoo.reset();
  const app = express();
  const mw = leakwatch({ notice: false, autoProbe: true, mode: 'dev' });
  app.use(mw);
  zoo.mountExpress(app);
  const server = app.listen(0, '127.0.0.1');
  const port = await listen(server);
  t.after(async () => { mw.close(); await close(server); zoo.reset(); });
  for (let i = 0; i < 40; i++) assert.equal((await get(port, '/zoo/array-push')).status, 200);
  const stats = mw.monitor.route('GET', '/zoo/array-push');
  assert.ok(stats);
  // The detector's word, set here directly (and again if the detector's own checkpoint on the
  // traffic above rewrites it): this test is about what the prober does with it.
  const deadline = Date.now() + 30_000;
  while (stats.probe === undefined && Date.now() < deadline) {
    if (stats.verdict !== 'leaking' && !mw.monitor.gate.closed) { stats.verdict = 'growing'; stats.verdictReason = 'test: growing'; }
    await new Promise((r) => setTimeout(r, 100));
  }
  const report = stats.probe as HttpProbeReport | undefined;
  assert.ok(report, 'no automatic probe within 30 s');
  assert.equal(report.trigger, 'auto');
  assert.equal(report.verdict, 'leaking');
  assert.equal(stats.verdict, 'leaking');
  const progress = (await get(port, '/__leaks/api/probe')).json();
  assert.equal(progress.last.trigger, 'auto');
  // Not again within the cooldown, even if it turns growing again.
  stats.verdict = 'growing';
  await new Promise((r) => setTimeout(r, 4_500));
  assert.equal(stats.probe, report);
});
