// npm run bench:detect — drives the leak zoo with concurrent, seeded, mixed traffic on Express 5
// and Fastify 5 under leakwatch (dev mode) and prints a scorecard: for every scenario its truth,
// the verdict, the estimated bytes/request against the truth, and how many requests (all routes
// together) it took until the verdict was right and stayed right. Writes the same as JSON under
// bench-results/.
//
// Options: --rate N (requests/s over all connections, default 200; 0 = flat out), --requests N
// (default 5000), --needle-requests N (default 3000), --seed N, --framework express|fastify, --phase N (requests per mix phase),
// --isolate MS (sampled isolation on, MS per checkpoint; default 0 = off, as in the detector),
// --sampling N (the sampling heap profiler's interval in bytes; 0 = off; default 2048, the option's),
// --cpu-budget X (the cpuBudget option: the detector's CPU as a share of the app's; default the option's),
// --calm-budget X (the calmBudget option; `Infinity` never calms down; default the option's),
// --needle-mix mild|wide (how the needle run's mix swings between phases; default mild: "one
// route among ten" gets about a tenth of the traffic, while the zoo run keeps the wide swings,
// where a route can sit nearly idle for a phase),
// --calm-first N (the needle run begins with N requests on its controls alone, so that the
// detector calms down (the calmBudget option) before the leaking route gets its first request;
// its "right after" then counts from the end of that prelude).
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RouteOutcome } from './detect-server';
import { EXTRA_ROUTES, isRight } from './detect-server';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const zoo = require(path.join(__dirname, '..', '..', '..', 'examples', 'zoo', 'index.js'));

interface Scenario { name: string; path: string; kind: 'leak' | 'control'; truthBytesPerRequest: number; truthExternalBytesPerRequest: number }

function arg(name: string, def: string): string {
  const i = process.argv.indexOf('--' + name);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : def;
}

const RATE = Number(arg('rate', '200'));
const REQUESTS = Number(arg('requests', '5000'));
const NEEDLE_REQUESTS = Number(arg('needle-requests', '3000'));
const SEED = Number(arg('seed', '1'));
const PHASE = Number(arg('phase', '250'));
const FRAMEWORKS = arg('framework', 'express,fastify').split(',');
const ISOLATE_MS = Number(arg('isolate', '0'));
const SAMPLING = arg('sampling', '');
const CPU_BUDGET = arg('cpu-budget', '');
const CALM_BUDGET = arg('calm-budget', '');
const NEEDLE_MIX = arg('needle-mix', 'mild') as 'mild' | 'wide';
const CALM_FIRST = Number(arg('calm-first', '0'));
if (!(CALM_FIRST >= 0)) throw new TypeError(`--calm-first must be a number of requests, got ${JSON.stringify(arg('calm-first', ''))}`);
if (NEEDLE_MIX !== 'mild' && NEEDLE_MIX !== 'wide') throw new TypeError(`--needle-mix must be mild or wide, got ${JSON.stringify(NEEDLE_MIX)}`);

interface RunResult {
  run: string;
  framework: string;
  requests: number;
  concurrency: number;
  rate: number;
  seconds: number;
  errors: number;
  outcomes: Array<RouteOutcome & { truthBytesPerRequest: number; truthExternalBytesPerRequest: number; errorPct: number | null; right: boolean }>;
  detector: { taken: number; skipped: number; costMs: number; drainMs: number; gcMs: number; analyzeMs: number; profileMs?: number; isolated?: number; isolateTimeouts?: number; heapScale: number | null };
  process: Record<string, unknown>;
  gate: { held: number; longestHoldMs: number };
  /** --calm-first: the prelude's requests, and the detector's calm when it ended. */
  prelude?: { requests: number; calm: { active: boolean; episodes: number }; checkpoints: number };
}

function urlsFor(s: Scenario): string[] {
  const rng = zoo.mulberry32(11);
  return Array.from({ length: 8 }, () => zoo.sample(s, rng));
}

function once<T>(child: ChildProcess, pred: (m: any) => boolean): Promise<T> {
  return new Promise((resolve, reject) => {
    const onMsg = (m: any): void => { if (pred(m)) { child.off('message', onMsg); resolve(m as T); } };
    child.on('message', onMsg);
    child.once('exit', (code) => reject(new Error(`child exited with ${code}`)));
  });
}

async function run(name: string, framework: string, scenarios: Scenario[], extras: string[], total: number, mix: 'wide' | 'mild' = 'wide', prelude?: { total: number; scenarios: Scenario[] }): Promise<RunResult> {
  const server = fork(path.join(__dirname, 'detect-server.js'), [framework], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], env: { ...process.env, NODE_ENV: 'development', DETECT_ISOLATE_MS: String(ISOLATE_MS), DETECT_SAMPLING: SAMPLING, DETECT_CPU_BUDGET: CPU_BUDGET, DETECT_CALM_BUDGET: CALM_BUDGET } });
  const { port } = await once<{ port: number }>(server, (m) => typeof m.port === 'number');
  let before: RunResult['prelude'];
  if (prelude !== undefined && prelude.total > 0) {
    const pre = { port, total: prelude.total, concurrency: 8, seed: SEED + 1000, rate: RATE, phase: PHASE, mix, routes: [...prelude.scenarios.map(urlsFor), ...extras.map((p) => [p])] };
    const c = fork(path.join(__dirname, 'detect-client.js'), [JSON.stringify(pre)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await once(c, (m) => m.finished === true);
    server.send({ cmd: 'calm' });
    const st = await once<{ calm: { active: boolean; episodes: number }; total: number; taken: number }>(server, (m) => m.calm !== undefined);
    before = { requests: st.total, calm: st.calm, checkpoints: st.taken };
  }
  const routes = [...scenarios.map(urlsFor), ...extras.map((p) => [p])];
  const cfg = { port, total, concurrency: 8, seed: SEED, rate: RATE, phase: PHASE, mix, routes };
  const client = fork(path.join(__dirname, 'detect-client.js'), [JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const fin = await once<{ done: number; errors: number; ms: number }>(client, (m) => m.finished === true);
  // Let one more checkpoint see the last requests.
  await new Promise((r) => setTimeout(r, 1500));
  server.send({ cmd: 'report' });
  const rep = await once<any>(server, (m) => Array.isArray(m.outcomes));
  await new Promise((r) => server.once('exit', r));
  const truth = new Map(zoo.scenarios.map((s: Scenario) => [s.name, s]));
  const wanted = new Set([...scenarios.map((s) => s.name), ...extras.map((p) => p.slice(1).replace('/', '-'))]);
  const outcomes = (rep.outcomes as RouteOutcome[]).filter((o) => wanted.has(o.name)).map((o) => {
    const t = truth.get(o.name) as Scenario | undefined;
    const th = t?.truthBytesPerRequest ?? 0;
    const te = t?.truthExternalBytesPerRequest ?? 0;
    // Compare where the leak lives: the Buffer leak's truth is external memory.
    const est = te > th ? o.externalBytesPerRequest : o.bytesPerRequest;
    const tv = te > th ? te : th;
    const errorPct = est !== null && tv > 0 ? ((est - tv) / tv) * 100 : null;
    const right = isRight(o.kind, o.verdict, o.reason);
    // After a prelude, count from its end: how long the detector took once the leak began.
    if (before !== undefined) {
      o = { ...o, rightAtTotal: o.rightAtTotal === null ? null : Math.max(0, o.rightAtTotal - before.requests), firstGrowingAtTotal: o.firstGrowingAtTotal === null ? null : o.firstGrowingAtTotal - before.requests };
    }
    return { ...o, truthBytesPerRequest: th, truthExternalBytesPerRequest: te, errorPct, right };
  });
  return { prelude: before, run: name, framework, requests: fin.done, concurrency: 8, rate: RATE, seconds: fin.ms / 1000, errors: fin.errors, outcomes, detector: rep.detector, process: rep.process, gate: rep.gate };
}

const kb = (b: number | null): string => (b === null ? '–' : Math.abs(b) >= 1000 ? (b / 1000).toFixed(2) + ' KB' : b.toFixed(0) + ' B');

function table(r: RunResult): string {
  const rows = [['scenario', 'kind', 'route req', 'truth/req', 'verdict', 'estimate/req (95%)', 'error', 'right after (total req)', 'control ever growing', 'basis']];
  for (const o of r.outcomes) {
    const ext = o.truthExternalBytesPerRequest > o.truthBytesPerRequest;
    const truth = ext ? `${kb(o.truthExternalBytesPerRequest)} ext` : kb(o.truthBytesPerRequest);
    const est = ext ? `${kb(o.externalBytesPerRequest)} ext (heap ${kb(o.bytesPerRequest)})` : `${kb(o.bytesPerRequest)} (${kb(o.low)}–${kb(o.high)})`;
    rows.push([
      o.name, o.kind, String(o.routeRequests), truth, o.verdict, est,
      o.errorPct === null ? '–' : `${o.errorPct >= 0 ? '+' : ''}${o.errorPct.toFixed(0)}%`,
      o.rightAtTotal === null ? 'NOT RIGHT' : String(o.rightAtTotal),
      o.kind === 'control' ? (o.firstGrowingAtTotal === null ? 'never' : `YES at ${o.firstGrowingAtTotal}`) : '',
      o.isolated?.basis ?? '–',
    ]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const line = (row: string[]): string => '| ' + row.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [line(rows[0]), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.slice(1).map(line)].join('\n');
}

async function main(): Promise<void> {
  const all: Scenario[] = zoo.scenarios;
  const byName = (n: string): Scenario => all.find((s) => s.name === n)!;
  const needle = ['array-push', 'hello', 'memo', 'transient', 'lru', 'lazy-init', 'grow-shrink'].map(byName);
  const results: RunResult[] = [];
  for (const fw of FRAMEWORKS) {
    results.push(await run('zoo', fw, all, [], REQUESTS));
    results.push(await run('needle', fw, needle, EXTRA_ROUTES, NEEDLE_REQUESTS, NEEDLE_MIX, { total: CALM_FIRST, scenarios: needle.filter((s) => s.kind === 'control') }));
  }
  console.log(`\nleakwatch detection benchmark — ${new Date().toISOString().slice(0, 10)}, Node ${process.version}, ${os.cpus().length} CPUs`);
  console.log(`concurrency 8, ${RATE > 0 ? RATE + ' req/s' : 'flat out'}, seed ${SEED}, mix re-drawn every ${PHASE} requests (needle run: ${NEEDLE_MIX} swings), isolation ${ISOLATE_MS > 0 ? ISOLATE_MS + ' ms/checkpoint' : 'off'}, sampling heap profiler ${SAMPLING === '0' ? 'off' : `every ${SAMPLING || 2048} B`}, cpuBudget ${CPU_BUDGET || 'default'}, calmBudget ${CALM_BUDGET || 'default'}${CALM_FIRST > 0 ? `, needle run after a prelude of ${CALM_FIRST} requests on its controls` : ''}\n`);
  let ok = true;
  for (const r of results) {
    const title = r.run === 'zoo' ? `all ${r.outcomes.length} zoo scenarios` : `a 1 KB/request leak among ${r.outcomes.length} routes`;
    console.log(`### ${r.framework}: ${title}, ${r.requests} requests in ${r.seconds.toFixed(1)} s (${r.errors} errors)`);
    if (r.prelude !== undefined) console.log(`prelude: ${r.prelude.requests} requests on the controls alone, ${r.prelude.checkpoints} checkpoints; calm at its end: ${r.prelude.calm.active ? 'yes' : 'NO'} (${r.prelude.calm.episodes} calm episodes). "right after" counts from the prelude's end.`);
    console.log(`checkpoints ${r.detector.taken} (skipped ${r.detector.skipped}), ${r.detector.costMs.toFixed(0)} ms in checkpoints (drain ${r.detector.drainMs.toFixed(0)} ms, forced GC ${r.detector.gcMs.toFixed(0)} ms, analysis ${r.detector.analyzeMs.toFixed(0)} ms, heap profiles ${(r.detector.profileMs ?? 0).toFixed(0)} ms; ${r.detector.isolated ?? 0} isolated samples) = ${(r.detector.costMs / 10 / r.seconds).toFixed(1)}% of wall time, residual scale ${kb(r.detector.heapScale)}, longest gate hold ${r.gate.longestHoldMs.toFixed(0)} ms`);
    console.log(table(r));
    const wrong = r.outcomes.filter((o) => !o.right).map((o) => o.name);
    const falseAlarms = r.outcomes.filter((o) => o.kind === 'control' && o.firstGrowingAtTotal !== null).map((o) => o.name);
    const big = r.outcomes.filter((o) => o.kind === 'leak' && Math.max(o.truthBytesPerRequest, o.truthExternalBytesPerRequest) >= 1000);
    const off = big.filter((o) => o.errorPct === null || Math.abs(o.errorPct) > 25).map((o) => o.name);
    console.log(`wrong at the end: ${wrong.join(', ') || 'none'}; controls ever growing: ${falseAlarms.join(', ') || 'none'}; leaks ≥ 1 KB outside ±25%: ${off.join(', ') || 'none'}\n`);
    if (wrong.length || falseAlarms.length || off.length) ok = false;
  }
  const dir = path.join(__dirname, '..', '..', '..', 'bench-results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `detect-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, rate: RATE, seed: SEED, phase: PHASE, results }, null, 2));
  console.log(`wrote ${path.relative(process.cwd(), file)}; all targets met: ${ok ? 'yes' : 'NO'}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
