import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import express from 'express';
import { leakwatch } from '../../src/express/index';
import type { Detector } from '../../src/core/detector';
import { checkpointGaps, chargedCpuMs, measureAftermath, BUDGET_RULES, type BudgetInput } from '../../src/core/analysis/budget';
import { close, listen, serveExpressDev } from '../helpers';

// Dev mode spaces its checkpoints so that their CPU stays within `cpuBudget` times the app's own
// (src/core/analysis/budget.ts). The rule is tested on plain numbers; the end-to-end test compares
// budgets 10,000 times apart, so its margins do not depend on the machine.

const base: BudgetInput = { lastCostMs: 10, lastCpuMs: 12, lastProfileMs: 0, elapsedMs: 1000, cpuSinceMs: 52, cpuBudget: 0.1 };

test('the checkpoint is charged its CPU twice (the GC aftermath) and the profile read once', () => {
  assert.equal(chargedCpuMs({ lastCpuMs: 12, lastProfileMs: 0 }), 24);
  assert.equal(chargedCpuMs({ lastCpuMs: 20, lastProfileMs: 8 }), 2 * 12 + 8);
});

test('the app gap keeps the charged CPU within cpuBudget times the app CPU, net of the aftermath', () => {
  // 52 ms of process CPU in 1 s, of which 12 ms is the last checkpoint's aftermath: the app used
  // 40 ms, 4% of a core; a tenth of that is 0.4%, and 24 ms at 0.4% of a core is 6 s.
  assert.deepEqual(checkpointGaps(base), { fixed: 24 / BUDGET_RULES.coreShare, app: 6000 });
  // Twice the budget, half the gap; twice the app's CPU, half the gap.
  assert.equal(checkpointGaps({ ...base, cpuBudget: 0.2 }).app, 3000);
  assert.equal(checkpointGaps({ ...base, cpuSinceMs: 92 }).app, 3000);
});

test('an app under minAppShare of a core counts as using minAppShare', () => {
  assert.equal(checkpointGaps({ ...base, cpuSinceMs: 12 }).app, 24 / (0.1 * BUDGET_RULES.minAppShare));
});

test('no cpuBudget (Infinity, the default) puts no app gap; the fixed budgets still space checkpoints', () => {
  assert.deepEqual(checkpointGaps({ ...base, cpuBudget: Infinity }), { fixed: 24 / BUDGET_RULES.coreShare, app: 0 });
  // A checkpoint that held the loop 100 ms: at 8% of wall time, 1,250 ms.
  assert.equal(checkpointGaps({ ...base, lastCostMs: 100, cpuBudget: Infinity }).fixed, 100 / BUDGET_RULES.wallShare);
});

test('before any checkpoint, nothing is charged: the shortest gap, and no app gap', () => {
  assert.deepEqual(checkpointGaps({ ...base, lastCostMs: 0, lastCpuMs: 0 }), { fixed: BUDGET_RULES.minGapMs, app: 0 });
  assert.equal(checkpointGaps({ ...base, elapsedMs: 0 }).app, 0);
});

test('the aftermath is measured as excess CPU per request right after a checkpoint, against later in the gap', () => {
  // 300 requests in the first part cost 150 ms; later 0.4 ms a request: 30 ms of excess on a 10 ms checkpoint.
  assert.equal(measureAftermath({ ownCpuMs: 10, earlyCpuMs: 150, earlyRequests: 300, lateCpuMs: 200, lateRequests: 500 }), 4);
  // No excess (or a faster start, from noise) is a factor of 1, never less.
  assert.equal(measureAftermath({ ownCpuMs: 10, earlyCpuMs: 100, earlyRequests: 300, lateCpuMs: 200, lateRequests: 500 }), 1);
  // Too few requests to tell, or nothing to charge against.
  assert.equal(measureAftermath({ ownCpuMs: 10, earlyCpuMs: 10, earlyRequests: 19, lateCpuMs: 200, lateRequests: 500 }), undefined);
  assert.equal(measureAftermath({ ownCpuMs: 10, earlyCpuMs: 150, earlyRequests: 300, lateCpuMs: 20, lateRequests: 49 }), undefined);
  assert.equal(measureAftermath({ ownCpuMs: 0, earlyCpuMs: 150, earlyRequests: 300, lateCpuMs: 200, lateRequests: 500 }), undefined);
});

test('a measured aftermath above the constant widens the app gap, never the fixed one; below it, the constant holds', () => {
  const plain = checkpointGaps(base);
  // Charged 12 ms × 4 = 48 ms; the app's CPU is 52 − 12 × 3 = 16 ms in 1 s: under the 2% floor, so 2%.
  assert.deepEqual(checkpointGaps({ ...base, aftermath: 4 }), { fixed: plain.fixed, app: 48 / (0.1 * BUDGET_RULES.minAppShare) });
  assert.equal(chargedCpuMs({ lastCpuMs: 12, lastProfileMs: 2, aftermath: 4 }), 10 * 4 + 2);
  assert.deepEqual(checkpointGaps({ ...base, aftermath: 1.2 }), plain);
});

/** Steady traffic, one request every `everyMs`, for `ms`. */
async function steady(port: number, ms: number, everyMs: number): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const end = Date.now() + ms;
  let n = 0;
  while (Date.now() < end) {
    await new Promise<void>((resolve, reject) => {
      http.get({ port, host: '127.0.0.1', path: '/hit', agent }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject);
    });
    n++;
    await new Promise((r) => setTimeout(r, everyMs));
  }
  agent.destroy();
  return n;
}

test('cpuBudget spaces checkpoints end to end: a tiny budget takes one, none or a large one several', async (t) => {
  const taken: Record<string, number> = {};
  for (const cpuBudget of [0.0001, 100, undefined]) {
    const app = express();
    const mw = leakwatch({ notice: false, mode: 'dev', autoProbe: false, samplingInterval: 0, loadRate: 0, checkpointIntervalMs: 100, ...(cpuBudget === undefined ? {} : { cpuBudget }) });
    app.use(mw);
    app.get('/hit', (_req, res) => { res.json({ ok: true }); });
    const server = http.createServer(app);
    const port = await listen(server);
    t.after(() => mw.close());
    try {
      await steady(port, 3000, 10);
      const d = mw.monitor.features.detector as Detector;
      taken[String(cpuBudget)] = d.taken;
    } finally {
      mw.close();
      await close(server);
    }
  }
  // At 0.0001 the first checkpoint (a forced GC: at least a millisecond of CPU) buys the next one
  // minutes of the app's CPU. At 100, or with no cap, checkpointIntervalMs (100 ms) brings them.
  assert.equal(taken['0.0001'], 1, JSON.stringify(taken));
  assert.ok(taken['100'] >= 5, JSON.stringify(taken));
  assert.ok(taken['undefined'] >= 5, JSON.stringify(taken));
});

test('regression: the detector wakes up 4 times a second, not 40, while no request comes', async (t) => {
  const { port, mw } = await serveExpressDev(t, { samplingInterval: 0, loadRate: 0 });
  const d = mw.monitor.features.detector as Detector;
  const tickMs = (): number => (d as unknown as { timer: { _idleTimeout: number } }).timer._idleTimeout;
  await steady(port, 300, 20);
  assert.equal(tickMs(), 25, 'while requests come');
  // A checkpoint (due within checkpointIntervalMs, 1 s), then no request: a second after it the
  // tick slows down.
  await new Promise((r) => setTimeout(r, 3500));
  assert.equal(tickMs(), 250, 'idle');
  await steady(port, 300, 20);
  assert.equal(tickMs(), 25, 'traffic again');
});
