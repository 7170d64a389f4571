/**
 * `npm run bench:overhead [-- --quick] [-- --rounds N --seconds S --rate R --no-callgrind --only express|fastify]`
 *
 * What leakwatch costs a server, side by side with bare servers and peer middleware, in one run:
 * - wall clock, fresh process per run, bare and variant alternated A/B over several rounds:
 *   saturating req/s (autocannon, 10 connections) and, at a fixed rate, p50/p99 latency (µs
 *   resolution) and server CPU time per request;
 * - instruction counts: the server under `valgrind --tool=callgrind` with `node --single-threaded`,
 *   driven from outside at a fixed rate; instructions per request = (I(2N) − I(N)) / N, each I read
 *   by `callgrind_control -d` after a warm-up, so start-up and warm-up cancel out.
 * Two workloads: `GET /hello/:name` (JSON) and `GET /alloc/:name` (the same after ~50 KB of garbage).
 * `--variants a,b,…` picks variants (bare always runs); `leakwatch-dev@/path/to/checkout` runs a
 * variant with another checkout's build, to compare two commits in one run.
 * Callgrind: `--cg-n N` (N=1000 resolves ~±0.3% on Fastify `/hello`, N=200 about ±2%), `--cg-reps`,
 * `--cg-warm`, `--cg-jobs`, `--cg-workloads hello` (skip `/alloc` for a quicker A/B).
 * `--settle S`: before each fixed-rate segment, S unmeasured seconds at the same rate, so that dev
 * mode reaches the state a server settles into at that pace (its calm, see `calmBudget`) rather
 * than the first seconds after the saturating run. The table then shows the steady state.
 * Diagnosis: LEAKWATCH_NODE_FLAGS adds node flags to every server (`--perf-basic-prof` names JIT
 * code in kept callgrind dumps, LEAKWATCH_KEEP_CALLGRIND=1); overhead-app.ts lists its own.
 * Prints Markdown tables and writes the raw figures to bench-results/overhead-<time>.json.
 */
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import autocannon from 'autocannon';
import { startServer, type ServerProc } from './server-proc';
import type { CallgrindSplit } from './callgrind';
import { RateClient, quantile } from './rate-client';
import { fix, machine, median, minMax, pct, repoRoot, signed, table, writeResult } from './util';

interface Config { framework: 'express' | 'fastify'; variant: string; env?: Record<string, string> }

const CONFIGS: Config[] = [
  { framework: 'express', variant: 'bare' },
  { framework: 'express', variant: 'empty-next' },
  { framework: 'express', variant: 'empty-middleware' },
  { framework: 'express', variant: 'empty-close' },
  { framework: 'express', variant: 'empty-dc' },
  { framework: 'express', variant: 'handle-wrap' },
  { framework: 'express', variant: 'handle-close' },
  { framework: 'express', variant: 'leakwatch-dev' },
  { framework: 'express', variant: 'leakwatch-dev-nosampling' },
  { framework: 'express', variant: 'leakwatch-dev-4096' },
  { framework: 'express', variant: 'leakwatch-dev-8192' },
  { framework: 'express', variant: 'leakwatch-dev-noguard' },
  { framework: 'express', variant: 'leakwatch-dev-calmoff' },
  { framework: 'express', variant: 'leakwatch-dev-budget01' },
  { framework: 'express', variant: 'leakwatch-dev-budget01-8192' },
  { framework: 'express', variant: 'leakwatch-dev-nocp-0' },
  { framework: 'express', variant: 'leakwatch-dev-nocp-2048' },
  { framework: 'express', variant: 'leakwatch-dev-nocp-8192' },
  { framework: 'express', variant: 'leakwatch-dev-nocp-32768' },
  { framework: 'express', variant: 'leakwatch-dev-underload' },
  { framework: 'express', variant: 'leakwatch-dev-underload-nohold' },
  { framework: 'express', variant: 'leakwatch-dev-underload-nosampling' },
  { framework: 'express', variant: 'leakwatch-dev-nohold' },
  { framework: 'express', variant: 'leakwatch-prod', env: { NODE_ENV: 'production' } },
  { framework: 'express', variant: 'leakwatch-prod-s64', env: { NODE_ENV: 'production' } },
  { framework: 'express', variant: 'leakwatch-prod-s16', env: { NODE_ENV: 'production' } },
  { framework: 'express', variant: 'leakwatch-prod-s8', env: { NODE_ENV: 'production' } },
  { framework: 'express', variant: 'express-prom-bundle' },
  { framework: 'express', variant: 'express-status-monitor' },
  { framework: 'express', variant: 'swagger-stats' },
  { framework: 'fastify', variant: 'bare' },
  { framework: 'fastify', variant: 'one-hook' },
  { framework: 'fastify', variant: 'empty-onsend' },
  { framework: 'fastify', variant: 'empty-hooks' },
  { framework: 'fastify', variant: 'empty-close' },
  { framework: 'fastify', variant: 'empty-dc' },
  { framework: 'fastify', variant: 'leakwatch-dev' },
  { framework: 'fastify', variant: 'leakwatch-dev-nosampling' },
  { framework: 'fastify', variant: 'leakwatch-dev-4096' },
  { framework: 'fastify', variant: 'leakwatch-dev-8192' },
  { framework: 'fastify', variant: 'leakwatch-dev-noguard' },
  { framework: 'fastify', variant: 'leakwatch-dev-calmoff' },
  { framework: 'fastify', variant: 'leakwatch-dev-budget01' },
  { framework: 'fastify', variant: 'leakwatch-dev-budget01-8192' },
  { framework: 'fastify', variant: 'leakwatch-dev-nocp-0' },
  { framework: 'fastify', variant: 'leakwatch-dev-nocp-2048' },
  { framework: 'fastify', variant: 'leakwatch-dev-nocp-8192' },
  { framework: 'fastify', variant: 'leakwatch-dev-nocp-32768' },
  { framework: 'fastify', variant: 'leakwatch-dev-underload' },
  { framework: 'fastify', variant: 'leakwatch-dev-underload-nohold' },
  { framework: 'fastify', variant: 'leakwatch-dev-underload-nosampling' },
  { framework: 'fastify', variant: 'leakwatch-dev-nohold' },
  { framework: 'fastify', variant: 'leakwatch-prod', env: { NODE_ENV: 'production' } },
  { framework: 'fastify', variant: 'leakwatch-prod-s64', env: { NODE_ENV: 'production' } },
  { framework: 'fastify', variant: 'leakwatch-prod-s16', env: { NODE_ENV: 'production' } },
  { framework: 'fastify', variant: 'leakwatch-prod-s8', env: { NODE_ENV: 'production' } },
  { framework: 'fastify', variant: 'fastify-metrics' },
];

const WORKLOADS = { hello: '/hello/world', alloc: '/alloc/world' } as const;
type Workload = keyof typeof WORKLOADS;

interface Args {
  quick: boolean; rounds: number; seconds: number; rate: number; callgrind: boolean; only?: string;
  /** Unmeasured seconds at the fixed rate before each fixed-rate segment (`--settle S`). */
  settle: number;
  cgN: number; cgRate: Record<string, number>; cgReps: number; cgWarm: number; cgJobs: number;
  variants?: string[];
  /** Callgrind only these workloads (`--cg-workloads hello`), for quicker A/B runs. */
  cgWorkloads?: Workload[];
}

function args(): Args {
  const a = process.argv.slice(2);
  const val = (name: string): string | undefined => { const i = a.indexOf(name); return i >= 0 ? a[i + 1] : undefined; };
  const quick = a.includes('--quick');
  return {
    quick,
    rounds: Number(val('--rounds') ?? (quick ? 1 : 3)),
    seconds: Number(val('--seconds') ?? (quick ? 1.5 : 2)),
    rate: Number(val('--rate') ?? 2000),
    settle: Number(val('--settle') ?? 0),
    callgrind: !a.includes('--no-callgrind'),
    only: val('--only'),
    variants: val('--variants')?.split(','),
    cgN: Number(val('--cg-n') ?? (quick ? 50 : 60)),
    // Callgrind slows node ~50×: these rates sit below what each framework then serves.
    cgRate: { express: Number(val('--cg-rate') ?? 25), fastify: Number(val('--cg-rate') ?? 50) },
    cgReps: Number(val('--cg-reps') ?? (quick ? 3 : 5)),
    // 10,000: after 2,000 the first of five pairs of bare Fastify /hello still read ~2,500
    // instructions under the rest, and paths taken by one request in 8 still ran in baseline code.
    cgWarm: Number(val('--cg-warm') ?? (quick ? 1500 : 10_000)),
    cgJobs: Number(val('--cg-jobs') ?? 3),
    cgWorkloads: val('--cg-workloads')?.split(',').map((w) => {
      if (!(w in WORKLOADS)) throw new TypeError(`--cg-workloads: unknown workload ${JSON.stringify(w)} (known: ${Object.keys(WORKLOADS).join(', ')})`);
      return w as Workload;
    }),
  };
}

interface WallFigures {
  rps: number;
  acP50ms: number;
  acP99ms: number;
  errors: number;
  rateP50us: number;
  rateP99us: number;
  cpuUsPerReq: number;
  rateDone: number;
  rateErrors: number;
}

async function saturate(port: number, p: string, seconds: number): Promise<autocannon.Result> {
  return autocannon({ url: `http://127.0.0.1:${port}${p}`, connections: 10, duration: seconds });
}

/** One fresh server: warm-up, then saturating and fixed-rate figures for each workload. */
async function wallRun(c: Config, o: Args): Promise<Record<Workload, WallFigures>> {
  const s = await startServer(c.framework, c.variant, { env: c.env });
  try {
    for (const p of Object.values(WORKLOADS)) await saturate(s.port, p, 0.5);
    const out = {} as Record<Workload, WallFigures>;
    for (const w of Object.keys(WORKLOADS) as Workload[]) {
      const r = await saturate(s.port, WORKLOADS[w], o.seconds);
      out[w] = {
        rps: r.requests.total / r.duration, acP50ms: r.latency.p50, acP99ms: r.latency.p99,
        errors: r.errors + r.timeouts + r.non2xx,
        rateP50us: NaN, rateP99us: NaN, cpuUsPerReq: NaN, rateDone: 0, rateErrors: 0,
      };
    }
    const client = await RateClient.open(s.port, 10);
    for (const w of Object.keys(WORKLOADS) as Workload[]) {
      const total = Math.round(o.rate * o.seconds);
      if (o.settle > 0) await client.get(WORKLOADS[w], { rate: o.rate, total: Math.round(o.rate * o.settle) });
      const cpu0 = await s.cpu();
      const r = await client.get(WORKLOADS[w], { rate: o.rate, total });
      const cpu1 = await s.cpu();
      Object.assign(out[w], {
        rateP50us: quantile(r.latencies, 0.5) * 1000,
        rateP99us: quantile(r.latencies, 0.99) * 1000,
        cpuUsPerReq: (cpu1 - cpu0) / Math.max(1, r.done),
        rateDone: r.done,
        rateErrors: r.errors + r.non2xx,
      });
    }
    client.close();
    return out;
  } finally {
    await s.stop();
  }
}

interface CgFigures {
  rate: number; n: number;
  /** Per pair: (X(2N) − X(N)) / N for program, GC and compile instructions. */
  program: number[]; gc: number[]; compile: number[]; total: number[];
  runs: Array<{ n: number; split: CallgrindSplit }>;
}

/** V8 flags of every server under callgrind (with --single-threaded, which server-proc adds). */
const CG_NODE_FLAGS = ['--interrupt-budget=32768', '--predictable', '--hash-seed=1', '--random-seed=1'];

/**
 * Instructions per request under callgrind. After a warm-up, `reps` pairs of runs of N and 2N
 * requests at a fixed rate on kept-open connections, each bracketed by `callgrind_control -d`;
 * per pair (I(2N) − I(N)) / N, split into program, GC and compile instructions (callgrind.ts),
 * and the median over pairs: V8 keeps tiering functions up and down long after start-up, which
 * lands in one run now and then, and the median leaves those out.
 */
async function callgrindRun(c: Config, o: Args, dir: string): Promise<Partial<Record<Workload, CgFigures>>> {
  // V8 tiers a function up after a budget of bytecodes run; a 4× smaller budget reaches the
  // optimized steady state within the warm-up (cgWarm), which callgrind can afford.
  // --predictable and fixed seeds: V8's hash tables and heuristics take the same course in every
  // run, so that pairs of runs of the same build differ by the traffic alone. With them, five
  // pairs of Fastify's alloc route read 169,864–170,481 bare (2026-11-27).
  const s: ServerProc = await startServer(c.framework, c.variant, { env: c.env, callgrindDir: dir, startTimeoutMs: 300_000, nodeFlags: CG_NODE_FLAGS });
  const rate = o.cgRate[c.framework];
  const client = await RateClient.open(s.port, 10);
  // Peers are counted on the hello route; leakwatch and bare on both.
  const all: Workload[] = o.quick || !(c.variant === 'bare' || c.variant.startsWith('leakwatch')) ? ['hello'] : ['hello', 'alloc'];
  const workloads = o.cgWorkloads === undefined ? all : all.filter((w) => o.cgWorkloads!.includes(w));
  try {
    for (const w of workloads) await client.get(WORKLOADS[w], { rate: 10_000, total: o.cgWarm, timeoutMs: 900_000 });
    const out: Partial<Record<Workload, CgFigures>> = {};
    for (const w of workloads) {
      const f: CgFigures = { rate, n: o.cgN, program: [], gc: [], compile: [], total: [], runs: [] };
      for (let rep = 0; rep < o.cgReps; rep++) {
        await s.dump();
        await client.get(WORKLOADS[w], { rate, total: o.cgN, timeoutMs: 600_000 });
        const a = await s.dump();
        await client.get(WORKLOADS[w], { rate, total: 2 * o.cgN, timeoutMs: 600_000 });
        const b = await s.dump();
        f.runs.push({ n: o.cgN, split: a }, { n: 2 * o.cgN, split: b });
        f.program.push((b.program - a.program) / o.cgN);
        f.gc.push((b.gc - a.gc) / o.cgN);
        f.compile.push((b.compile - a.compile) / o.cgN);
        f.total.push((b.total - a.total) / o.cgN);
      }
      out[w] = f;
    }
    if (c.variant.startsWith('leakwatch-dev')) {
      // Whether dev mode's load guard held through the measured runs (a guard that let go during
      // a dump's pause would take checkpoints inside them).
      const p = await new Promise<string>((resolve) => {
        http.get({ host: '127.0.0.1', port: s.port, path: '/__leaks/api/process' }, (res) => { let b = ''; res.on('data', (d) => { b += d; }); res.on('end', () => resolve(b)); }).on('error', () => resolve('{}'));
      });
      try {
        const j = JSON.parse(p) as { findings?: { checkpoints?: number; load?: { active?: boolean; episodes?: number }; calm?: { active?: boolean; episodes?: number } } };
        process.stdout.write(`  callgrind ${key(c)}: ${j.findings?.checkpoints} checkpoints, load guard ${j.findings?.load?.active ? 'on' : 'off'}, ${j.findings?.load?.episodes} episodes, calm ${j.findings?.calm?.active ? 'on' : 'off'} (${j.findings?.calm?.episodes ?? 0} episodes)\n`);
      } catch { /* not JSON: leave it out */ }
    }
    return out;
  } finally {
    client.close();
    await s.stop();
  }
}

const key = (c: Config): string => `${c.framework}/${c.variant}`;

async function main(): Promise<void> {
  const o = args();
  const t0 = Date.now();
  // `variant@/path/to/checkout` runs a known variant with another checkout's build (overhead-app.ts).
  const elsewhere = (o.variants ?? []).filter((v) => v.includes('@')).flatMap((v) => CONFIGS
    .filter((c) => c.variant === v.slice(0, v.indexOf('@')))
    .map((c) => ({ ...c, variant: v })));
  const configs = [...CONFIGS, ...elsewhere].filter((c) => (o.only === undefined || c.framework === o.only) && (o.variants === undefined || c.variant === 'bare' || o.variants.includes(c.variant)));
  const command = `npm run bench:overhead${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`;
  let commit = '';
  try { commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: repoRoot }).toString().trim(); } catch { /* not a checkout */ }
  console.log(`bench:overhead  ${new Date().toISOString()}  node ${process.version}  ${os.cpus().length} CPUs  commit ${commit}`);
  console.log(`rounds ${o.rounds}, ${o.seconds}s per segment, fixed rate ${o.rate} req/s${o.settle > 0 ? ` after ${o.settle}s unmeasured at that rate` : ''}, callgrind ${o.callgrind ? `N=${o.cgN} at ${JSON.stringify(o.cgRate)} req/s, ${o.cgReps} pairs, warm-up ${o.cgWarm}` : 'off'}`);

  // Wall clock: each variant runs next to its own bare run, order flipped every other pair.
  const pairs: Array<{ round: number; config: string; bare: Record<Workload, WallFigures>; variant: Record<Workload, WallFigures> }> = [];
  for (let round = 0; round < o.rounds; round++) {
    for (const fw of ['express', 'fastify'] as const) {
      const bare = configs.find((c) => c.framework === fw && c.variant === 'bare');
      const others = configs.filter((c) => c.framework === fw && c.variant !== 'bare');
      if (bare === undefined) continue;
      const n = others.length;
      for (let i = 0; i < n; i++) {
        const v = others[(i + round) % n];
        const bareFirst = (i + round) % 2 === 0;
        const a = await wallRun(bareFirst ? bare : v, o);
        const b = await wallRun(bareFirst ? v : bare, o);
        pairs.push({ round, config: key(v), bare: bareFirst ? a : b, variant: bareFirst ? b : a });
        process.stdout.write(`  round ${round + 1}/${o.rounds} ${key(v).padEnd(32)} hello ${fix(pairs.at(-1)!.variant.hello.rps, 0)} vs bare ${fix(pairs.at(-1)!.bare.hello.rps, 0)} req/s  (${Math.round((Date.now() - t0) / 1000)} s)\n`);
      }
    }
  }

  const cg = new Map<string, Partial<Record<Workload, CgFigures>>>();
  if (o.callgrind) {
    const dir = path.join(os.tmpdir(), `leakwatch-cg-${process.pid}`);
    const queue = [...configs];
    const worker = async (): Promise<void> => {
      for (let c = queue.shift(); c !== undefined; c = queue.shift()) {
        try {
          const f = await callgrindRun(c, o, dir);
          cg.set(key(c), f);
          process.stdout.write(`  callgrind ${key(c).padEnd(32)} hello ${fix(median(f.hello?.program ?? []), 0)} alloc ${fix(median(f.alloc?.program ?? []), 0)} program instr/req  (${Math.round((Date.now() - t0) / 1000)} s)\n`);
        } catch (e) {
          process.stdout.write(`  callgrind ${key(c)} failed: ${(e as Error).message.slice(0, 300)}\n`);
        }
      }
    };
    // Instruction counts hardly depend on CPU contention, so several servers are counted at once.
    await Promise.all(Array.from({ length: Math.max(1, o.cgJobs) }, worker));
  }

  // Summaries: medians over pairs of per-pair ratios and differences.
  const summary: Record<string, Record<Workload, Record<string, number>>> = {};
  for (const c of configs) {
    const k = key(c);
    const bareKey = `${c.framework}/bare`;
    summary[k] = {} as Record<Workload, Record<string, number>>;
    for (const w of Object.keys(WORKLOADS) as Workload[]) {
      const mine = c.variant === 'bare'
        ? pairs.filter((p) => p.config.startsWith(c.framework + '/')).map((p) => ({ v: p.bare[w], b: p.bare[w] }))
        : pairs.filter((p) => p.config === k).map((p) => ({ v: p.variant[w], b: p.bare[w] }));
      const kept = mine.map((p) => p.v.rps / p.b.rps);
      const cpuRatio = mine.map((p) => p.v.cpuUsPerReq / p.b.cpuUsPerReq);
      const cgMine = cg.get(k)?.[w]?.program ?? [];
      const cgBare = cg.get(bareKey)?.[w]?.program ?? [];
      const [keptMin, keptMax] = minMax(kept);
      const [cpuMin, cpuMax] = minMax(cpuRatio);
      summary[k][w] = {
        rps: median(mine.map((p) => p.v.rps)),
        kept: median(kept), keptMin, keptMax,
        acP99ms: median(mine.map((p) => p.v.acP99ms)),
        rateP50us: median(mine.map((p) => p.v.rateP50us)),
        rateP99us: median(mine.map((p) => p.v.rateP99us)),
        p50AddedUs: median(mine.map((p) => p.v.rateP50us - p.b.rateP50us)),
        p99AddedUs: median(mine.map((p) => p.v.rateP99us - p.b.rateP99us)),
        cpuUsPerReq: median(mine.map((p) => p.v.cpuUsPerReq)),
        cpuRatio: median(cpuRatio), cpuMin, cpuMax,
        instrPerReq: median(cgMine),
        instrRatio: median(cgMine) / median(cgBare),
        instrSpread: (() => { const [lo, hi] = minMax(cgMine); return (hi - lo) / median(cgMine); })(),
        gcInstrPerReq: median(cg.get(k)?.[w]?.gc ?? []),
        compileInstrPerReq: median(cg.get(k)?.[w]?.compile ?? []),
        errors: mine.reduce((s, p) => s + p.v.errors + p.v.rateErrors, 0),
        pairs: mine.length,
      };
    }
  }

  const lines: string[] = [];
  for (const w of Object.keys(WORKLOADS) as Workload[]) {
    for (const fw of ['express', 'fastify']) {
      const rows = configs.filter((c) => c.framework === fw).map((c) => {
        const s = summary[key(c)][w];
        const bare = c.variant === 'bare';
        return [
          c.variant,
          fix(s.instrPerReq, 0), bare ? '' : pct(s.instrRatio), fix(s.gcInstrPerReq, 0),
          fix(s.cpuUsPerReq, 1), bare ? '' : pct(s.cpuRatio, 0) + (s.pairs > 1 ? ` (${pct(s.cpuMin, 0)}…${pct(s.cpuMax, 0)})` : ''),
          fix(s.rps, 0), bare ? '1.00' : fix(s.kept) + (s.pairs > 1 ? ` (${fix(s.keptMin)}–${fix(s.keptMax)})` : ''),
          bare ? fix(s.rateP50us, 0) : signed(s.p50AddedUs, 0),
          bare ? fix(s.rateP99us, 0) : signed(s.p99AddedUs, 0),
          String(s.errors),
        ];
      });
      lines.push(`\n### ${fw === 'express' ? 'Express 5' : 'Fastify 5'}, ${w === 'hello' ? 'GET /hello/:name' : 'GET /alloc/:name (~50 KB garbage per request)'}\n`);
      lines.push(table([
        'variant', 'instr/req (callgrind)', 'instr added', 'GC instr/req', `CPU µs/req @${o.rate}/s`, 'CPU added (min…max)',
        'req/s (sat.)', 'req/s kept (min–max)', `p50 µs @${o.rate}/s (added)`, `p99 µs @${o.rate}/s (added)`, 'errors',
      ], rows));
    }
  }
  console.log(lines.join('\n'));
  console.log(`\ninstr/req = server instructions per request under callgrind, program part (V8 GC and JIT-compiler instructions counted apart; GC in its own column), node --single-threaded ${CG_NODE_FLAGS.join(' ')}, fixed rate Express ${o.cgRate.express} req/s, Fastify ${o.cgRate.fastify} req/s; median over ${o.cgReps} pairs of (I(2N)−I(N))/N, N=${o.cgN}, after ${o.cgWarm} warm-up requests per route. Dev mode's checkpoints run on wall-clock time, which callgrind stretches ~50×, so its GC column is that of a server at the callgrind rate.`);
  console.log(`CPU, req/s and latency are wall-clock: medians over ${o.rounds} A/B pair(s) with a fresh bare run each; this machine drifts by tens of % between identical runs.`);
  const file = writeResult('overhead', { machine: machine(), command, commit, options: o, summary, pairs, callgrind: Object.fromEntries(cg), seconds: (Date.now() - t0) / 1000 });
  console.log(`\n${Math.round((Date.now() - t0) / 1000)} s; raw figures in ${path.relative(repoRoot, file)}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
