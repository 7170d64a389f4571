// npm run bench:probe — probe cost on big heaps and probe accuracy on the zoo.
//
// For each heap size a child process builds the heap, serves the zoo with leakwatch, and is
// probed over HTTP (POST /__leaks/api/probe) on GET /zoo/interval (a 1.3 KB/request leak):
// once for bytes and verdict only, once with the exact object diff (two heap snapshots).
// Reported: wall time of the probe request, and peak extra RSS of the child during it
// (VmHWM after resetting it through /proc/PID/clear_refs, minus RSS before).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { get, postJson } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const zoo = require(path.join(__dirname, '..', '..', '..', 'examples', 'zoo', 'index.js')) as {
  scenarios: Array<{ name: string; path: string; kind: string; truthBytesPerRequest: number; truthExternalBytesPerRequest: number }>;
  sample(s: unknown, rng?: () => number): string;
};

const API = '/__leaks/api/probe';

interface Child { proc: ChildProcess; port: number; pid: number }

async function startChild(heapMb: number): Promise<Child> {
  const script = path.join(__dirname, 'probe-server.js');
  const proc = spawn(process.execPath, [script], { env: { ...process.env, HEAP_MB: String(heapMb), NODE_ENV: 'development' }, stdio: ['ignore', 'pipe', 'inherit'] });
  const rl = readline.createInterface({ input: proc.stdout! });
  const line = await new Promise<string>((resolve, reject) => {
    rl.once('line', resolve);
    proc.once('exit', (code) => reject(new Error(`probe-server exited with ${code}`)));
  });
  rl.close();
  const { port, pid } = JSON.parse(line) as { port: number; pid: number };
  return { proc, port, pid };
}

function statusKb(pid: number, field: string): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function timedProbe(c: Child, body: Record<string, unknown>): Promise<{ ms: number; peakExtraMb: number; status: number; report: any }> {
  const before = statusKb(c.pid, 'VmRSS');
  try { fs.writeFileSync(`/proc/${c.pid}/clear_refs`, '5'); } catch { /* older kernels: peak since start */ }
  const t = performance.now();
  const r = await postJson(c.port, API, body);
  const ms = performance.now() - t;
  const peak = statusKb(c.pid, 'VmHWM');
  return { ms, peakExtraMb: (peak - before) / 1024, status: r.status, report: r.json() };
}

async function traffic(port: number, paths: string[], n: number): Promise<void> {
  for (let i = 0; i < n; i++) for (const p of paths) await get(port, p);
}

const mb = (b: number): string => (b / 1048576).toFixed(0);
const pad = (s: unknown, n: number): string => String(s).padEnd(n);
const lpad = (s: unknown, n: number): string => String(s).padStart(n);

async function bigHeaps(): Promise<void> {
  const sizes = (process.env.BENCH_HEAPS ?? '50,200,500').split(',').map(Number);
  const rows: string[] = [];
  const gcRows: string[] = [];
  for (const size of sizes) {
    const c = await startChild(size);
    try {
      await traffic(c.port, ['/zoo/interval', '/zoo/hello/ada'], 40);
      const gc = (await get(c.port, '/bench/gc')).json() as { vmMs: number[]; inspMs: number[]; vmHeap: number[]; inspHeap: number[] };
      const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1];
      const spread = (xs: number[]): number => Math.max(...xs) - Math.min(...xs);
      gcRows.push(`| ${size} MB | ${med(gc.vmMs).toFixed(0)} ms | ${med(gc.inspMs).toFixed(0)} ms | ${(spread(gc.vmHeap) / 1024).toFixed(1)} KB | ${(spread(gc.inspHeap) / 1024).toFixed(1)} KB |`);
      const base = { method: 'GET', route: '/zoo/interval', iterations: 30, timeoutMs: 900_000 };
      const a = await timedProbe(c, { ...base, objects: false });
      const b = await timedProbe(c, { ...base, objects: true });
      const live = a.report.liveHeapBefore ?? 0;
      const nodes = b.report.objects ? `${(b.report.objects.enter / 1e6).toFixed(2)}M` : '-';
      const cell = (p: typeof a): string => (p.status === 200 ? `${(p.ms / 1000).toFixed(1)} s, +${p.peakExtraMb.toFixed(0)} MB RSS, ${p.report.verdict} ${p.report.retainedBytesPerIteration} B/it` : `HTTP ${p.status}: ${String(p.report.error).slice(0, 80)}`);
      const tm = b.report.timings ?? {};
      rows.push(`| ${size} MB | ${mb(live)} MB | ${nodes} | ${cell(a)} | ${cell(b)} | ${tm.snapshotMs ?? '-'} / ${tm.parseMs ?? '-'} ms |`);
      const timeout = b.report.newObjects?.find((o: { constructor: string }) => o.constructor === 'Timeout');
      if (timeout) rows.push(`|   | | | | Timeout ${timeout.countPerIteration}/iteration | |`);
      console.error(`heap ${size} MB done; series (bytes only): ${a.report.bytesPerIterationSeries?.join(' ')} excluded ${a.report.excludedIterations?.join(',')} extra warm-up ${a.report.extraWarmup}`);
    } finally {
      c.proc.kill();
    }
  }
  console.log('\n### Probe cost by heap size (GET /zoo/interval, 30 iterations, warm-up 3)\n');
  console.log('| heap asked | live heap | objects (snapshot nodes) | bytes + verdict | with exact object diff | snapshots / parse |');
  console.log('|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log('\n### Forced full GC: vm-exposed gc() vs inspector HeapProfiler.collectGarbage (median of 5; spread of live heap across the 5)\n');
  console.log('| heap | gc() | collectGarbage | live-heap spread gc() | live-heap spread collectGarbage |');
  console.log('|---|---|---|---|---|');
  for (const r of gcRows) console.log(r);
}

/**
 * Options (environment):
 * - BENCH_ZOO_ONLY=every-10th,array-push: only these scenarios;
 * - BENCH_ZOO_ITERATIONS=30,100: probe each scenario at each of these iteration counts (default 30);
 * - BENCH_ZOO_REPEAT=5: probe each (scenario, iterations) this many times, in one server;
 * - BENCH_ZOO_OBJECTS=0: bytes and verdict only (no heap snapshots);
 * - BENCH_ZOO_SERIES=1: print each probe's per-iteration differences to stderr.
 */
async function zooAccuracy(): Promise<void> {
  const c = await startChild(8);
  const rows: string[] = [];
  let right = 0;
  let within = 0;
  let big = 0;
  let probes = 0;
  const only = process.env.BENCH_ZOO_ONLY?.split(',').filter(Boolean);
  const scenarios = only ? zoo.scenarios.filter((s) => only.includes(s.name)) : zoo.scenarios;
  const iterationCounts = (process.env.BENCH_ZOO_ITERATIONS ?? '30').split(',').map(Number);
  const repeat = Number(process.env.BENCH_ZOO_REPEAT ?? 1);
  try {
    let seed = 1;
    const rng = (): number => { seed = (seed * 16807) % 2147483647; return seed / 2147483647; };
    // Traffic first, as a developer's server would have had: caches fill, lazy init runs.
    for (let i = 0; i < 80; i++) for (const s of zoo.scenarios) await get(c.port, zoo.sample(s, rng));
    const runs: Array<{ s: typeof zoo.scenarios[number]; iterations: number }> = [];
    for (const s of scenarios) for (const iterations of iterationCounts) for (let k = 0; k < repeat; k++) runs.push({ s, iterations });
    for (const { s, iterations } of runs) {
      probes++;
      const objects = process.env.BENCH_ZOO_OBJECTS !== '0';
      const r = await timedProbe(c, { method: 'GET', route: s.path, iterations, objects, timeoutMs: 900_000 });
      const rep = r.report;
      const truth = s.truthBytesPerRequest + s.truthExternalBytesPerRequest;
      if (r.status !== 200) {
        const its = rep.measuredIterations > iterations ? `${iterations}→${rep.measuredIterations}` : String(iterations);
      rows.push(`| ${pad(s.name, 15)} | ${its} | ${s.kind} | ${lpad(truth, 5)} | HTTP ${r.status}: ${String(rep.error).slice(0, 100)} ✗ | | | | | |`);
        continue;
      }
      if (process.env.BENCH_ZOO_SERIES === '1') {
        console.error(`${s.name} ×${iterations}: ${rep.retainedBytesPerIteration} B/it; measured ${rep.measuredIterations}; period ${rep.period}; extra warm-up ${rep.extraWarmup}; excluded [${rep.excludedIterations.join(',')}]; diffs ${rep.bytesPerIterationSeries.join(' ')}`);
      }
      const expect = s.kind === 'leak' ? 'leaking' : 'stable';
      const ok = rep.verdict === expect;
      if (ok) right++;
      let err = '';
      if (truth >= 1000) {
        big++;
        const e = (rep.retainedBytesPerIteration - truth) / truth;
        if (Math.abs(e) <= 0.1) within++;
        err = `${e >= 0 ? '+' : ''}${(e * 100).toFixed(1)}%`;
      }
      const top = (rep.newObjects ?? []).filter((o: { countPerIteration: number }) => o.countPerIteration >= 0.8).slice(0, 3)
        .map((o: { constructor: string; countPerIteration: number }) => `${o.constructor} ${o.countPerIteration}`).join(', ');
      const its = rep.measuredIterations > iterations ? `${iterations}→${rep.measuredIterations}` : String(iterations);
      rows.push(`| ${pad(s.name, 15)} | ${its} | ${s.kind} | ${lpad(truth, 5)} | ${rep.verdict}${ok ? '' : ' ✗'} | ${lpad(rep.retainedBytesPerIteration, 5)} | ${err} | ${rep.newGlobals.length > 0 ? rep.newGlobals.slice(0, 3).join(', ') + '…' : ''} | ${top} | ${(r.ms / 1000).toFixed(1)} s |`);
    }
  } finally {
    c.proc.kill();
  }
  console.log(`\n### Probe accuracy on the zoo (Express, ${iterationCounts.join(' and ')} iterations after 80 requests of mixed traffic; truth = examples/zoo measureTruth)\n`);
  console.log('| scenario | iterations (asked→measured) | kind | truth B/req | verdict | probe B/iteration | error (≥ 1 KB) | new globals | new objects ≥ 0.8/iteration | time |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const r of rows) console.log(r);
  console.log(`\nverdicts right: ${right}/${probes}; leaks ≥ 1 KB within ±10%: ${within}/${big}`);
}

async function main(): Promise<void> {
  console.log(`bench:probe — ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${os.cpus().length} CPUs, ${(os.totalmem() / 2 ** 30).toFixed(0)} GB`);
  if (process.env.BENCH_SKIP_ZOO !== '1') await zooAccuracy();
  if (process.env.BENCH_SKIP_HEAPS !== '1') await bigHeaps();
}

main().catch((e) => { console.error(e); process.exit(1); });
