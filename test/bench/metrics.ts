// npm run bench:metrics — what the Prometheus metrics cost:
//  1. per request: DeltaHistogram.observe() (the only per-request work the metrics add), against
//     the physical floor of a Map lookup plus a counter increment;
//  2. per scrape: registry.metrics() time and output size at 10, 100 and 1,000 routes;
//  3. memory: bytes per route of the bucket counters.
// Medians of several runs; the machine is shared and noisy, so read orders of magnitude.
import v8 from 'node:v8';
import { createMonitor } from '../../src/core/monitor';
import { DeltaHistogram } from '../../src/core/metrics/histogram';
import type { MetricsFeature } from '../../src/core/metrics/index';
import { forceFullGc } from '../../src/core/gc';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** Realistic heap deltas: mostly garbage of 1–200 KB, some negative (a GC ran). */
function deltas(n: number): Float64Array {
  const out = new Float64Array(n);
  let x = 12345;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2147483648;
    const u = x / 2147483648;
    out[i] = u < 0.08 ? -u * 4e6 : Math.exp(7 + u * 5.3);
  }
  return out;
}

function nsPerOp(body: (i: number) => void, n: number): number {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) body(i);
  return Number(process.hrtime.bigint() - t0) / n;
}

function hotPath(): Array<[string, number]> {
  const N = 2_000_000;
  const d = deltas(4096);
  const h = new DeltaHistogram();
  // Every body reads the same delta and writes a double field in place, so loop and read costs cancel.
  const acc = { sum: 0.5, n: 0.5 };
  const map = new Map<string, { n: number }>([['GET /users/:id', { n: 0 }]]);
  const key = 'GET /users/:id';
  const base: number[] = [];
  const observe: number[] = [];
  const floor: number[] = [];
  for (let r = 0; r < 9; r++) {
    base.push(nsPerOp((i) => { acc.sum += d[i & 4095]; }, N));
    observe.push(nsPerOp((i) => { h.observe(d[i & 4095]); }, N));
    floor.push(nsPerOp((i) => { const e = map.get(key); if (e) e.n++; acc.sum += d[i & 4095]; }, N));
  }
  if (acc.sum === 42 || h.count === 1) console.log('');
  const b = median(base);
  return [
    ['baseline: read a delta, add it to a field', b],
    ['DeltaHistogram.observe(delta)', median(observe)],
    ['floor: Map.get + counter++ (+ baseline)', median(floor)],
  ];
}

async function scrape(routes: number): Promise<{ routes: number; series: number; bytes: number; ms: number }> {
  const m = createMonitor({ notice: false, maxRoutes: routes, checkpointIntervalMs: 3_600_000, autoProbe: false });
  const d = deltas(4096);
  for (let r = 0; r < routes; r++) {
    const s = m.recorder.routeFor('GET', `/route${r}/:id`);
    s.requests = 1000;
    for (let k = 0; k < 1000; k++) s.heapDeltaHistogram.observe(d[(r * 7 + k) & 4095]);
  }
  const reg = (m.features.metrics as MetricsFeature).registry;
  let text = await reg.metrics();
  const times: number[] = [];
  for (let i = 0; i < 15; i++) {
    const t0 = process.hrtime.bigint();
    text = await reg.metrics();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  m.close();
  const series = text.split('\n').filter((l) => l !== '' && !l.startsWith('#')).length;
  return { routes, series, bytes: Buffer.byteLength(text), ms: median(times) };
}

async function main(): Promise<void> {
  console.log(`leakwatch bench:metrics — Node ${process.version}, ${new Date().toISOString().slice(0, 10)}`);
  console.log('\nPer request (in-process, 2M iterations, median of 9 runs)');
  console.log('| operation | ns/op |');
  console.log('|---|---|');
  for (const [name, ns] of hotPath()) console.log(`| ${name} | ${ns.toFixed(1)} |`);

  console.log('\nPer scrape (registry.metrics(), median of 15)');
  console.log('| routes | series | bytes | ms/scrape |');
  console.log('|---|---|---|---|');
  for (const n of [10, 100, 1000]) {
    const r = await scrape(n);
    console.log(`| ${r.routes} | ${r.series} | ${r.bytes} | ${r.ms.toFixed(2)} |`);
  }
  // Memory: 10,000 histograms, heap after a full GC before and after.
  forceFullGc();
  const before = v8.getHeapStatistics().used_heap_size;
  const keep: DeltaHistogram[] = [];
  for (let i = 0; i < 10_000; i++) keep.push(new DeltaHistogram());
  forceFullGc();
  const per = (v8.getHeapStatistics().used_heap_size - before) / keep.length;
  console.log(`\nMemory: ${per.toFixed(0)} bytes of heap per route for the bucket counters (10,000 measured; the Float64Array's ${keep[0].counts.byteLength} data bytes included).`);
}

void main();
