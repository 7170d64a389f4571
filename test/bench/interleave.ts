/**
 * `npm run bench:interleave`: CPU per request of a leakwatch variant against a bare server, both
 * alive at once and served in alternating one-second slices at a fixed rate.
 *
 * Why: on this machine the CPU a request costs drifts by ±30% from one second to the next, for
 * the same process (1 s buckets of a bare Express server at 200 req/s read 364–750 µs within 30
 * s). bench:overhead runs bare and the variant one after the other, so that drift lands on one of
 * them. Here both see the same seconds: each slice pair is ordered AB then BA, and each process's
 * CPU is read over the whole measured span, so whatever it does between its own slices (a
 * checkpoint's recompilation on V8's worker threads, its timers) counts too. Both servers first
 * settle concurrently at the same rate, long enough for dev mode to reach its calm.
 *
 * @example
 * ```sh
 * npm run bench:interleave -- --pairs 3 --settle 60 --slices 20 --variant leakwatch-dev
 * ```
 */
import { startServer, type ServerProc } from './server-proc';
import { RateClient, quantile } from './rate-client';
import { machine, median, pct, table, writeResult } from './util';

interface Options {
  pairs: number;
  settle: number;
  slices: number;
  rate: number;
  variant: string;
  workload: string;
  frameworks: string[];
}

function parse(a: string[]): Options {
  const val = (k: string): string | undefined => { const i = a.indexOf(k); return i >= 0 ? a[i + 1] : undefined; };
  const num = (k: string, d: number, min: number): number => {
    const raw = val(k);
    const n = raw === undefined ? d : Number(raw);
    if (!Number.isFinite(n) || n < min) throw new TypeError(`${k} must be a number ≥ ${min}, got ${raw}`);
    return n;
  };
  const workload = val('--workload') ?? 'hello';
  if (workload !== 'hello' && workload !== 'alloc') throw new TypeError(`--workload must be hello or alloc, got ${workload}`);
  const only = val('--only');
  if (only !== undefined && only !== 'express' && only !== 'fastify') throw new TypeError(`--only must be express or fastify, got ${only}`);
  return {
    pairs: num('--pairs', 3, 1),
    settle: num('--settle', 60, 0),
    slices: num('--slices', 20, 2),
    rate: num('--rate', 200, 1),
    variant: val('--variant') ?? 'leakwatch-dev',
    workload,
    frameworks: only === undefined ? ['express', 'fastify'] : [only],
  };
}

interface PairResult {
  framework: string;
  bareUs: number;
  variantUs: number;
  ratio: number;
  /** Per slice pair: the variant's CPU per request over bare's, in the same two seconds. */
  sliceRatios: number[];
  stats: Record<string, number>;
}

async function slice(s: ServerProc, c: RateClient, path: string, rate: number): Promise<{ cpu: number; n: number }> {
  const c0 = await s.cpu();
  const r = await c.get(path, { rate, total: rate });
  return { cpu: (await s.cpu()) - c0, n: r.done };
}

async function pair(framework: string, o: Options): Promise<PairResult> {
  const env = o.variant.includes('-prod') ? { NODE_ENV: 'production' } : undefined;
  const bare = await startServer(framework, 'bare');
  const lw = await startServer(framework, o.variant, { env });
  const path = `/${o.workload}/world`;
  const cb = await RateClient.open(bare.port, 10);
  const cl = await RateClient.open(lw.port, 10);
  try {
    await Promise.all([cb.get(path, { rate: o.rate, total: o.rate * o.settle }), cl.get(path, { rate: o.rate, total: o.rate * o.settle })]);
    const before = await lw.stats();
    const a0 = await bare.cpu();
    const b0 = await lw.cpu();
    let na = 0;
    let nb = 0;
    const sliceRatios: number[] = [];
    for (let i = 0; i < o.slices; i++) {
      const first = i % 2 === 0;
      const x = first ? await slice(bare, cb, path, o.rate) : await slice(lw, cl, path, o.rate);
      const y = first ? await slice(lw, cl, path, o.rate) : await slice(bare, cb, path, o.rate);
      const a = first ? x : y;
      const b = first ? y : x;
      na += a.n;
      nb += b.n;
      sliceRatios.push((b.cpu / b.n) / (a.cpu / a.n));
    }
    const bareUs = ((await bare.cpu()) - a0) / na;
    const variantUs = ((await lw.cpu()) - b0) / nb;
    const stats = await lw.stats();
    // Checkpoints inside the measured span (the calm's, for a dev variant), apart from the settling's.
    if (typeof stats.taken === 'number' && typeof before.taken === 'number') stats.inSpan = stats.taken - before.taken;
    return { framework, bareUs, variantUs, ratio: variantUs / bareUs, sliceRatios, stats };
  } finally {
    cb.close();
    cl.close();
    await bare.stop();
    await lw.stop();
  }
}

const q = (xs: number[], p: number): number => quantile(Float64Array.from(xs).sort(), p);
const pc = (r: number): string => pct(r, 1);

async function main(): Promise<void> {
  const o = parse(process.argv.slice(2));
  const t0 = Date.now();
  const m = machine();
  console.log(`bench:interleave  ${m.date}  node ${m.node}  ${m.cpus} CPUs`);
  console.log(`${o.variant} against bare, GET /${o.workload}/:name at ${o.rate} req/s each: ${o.settle} s settling (both at once), then ${o.slices} alternating 1 s slices each; ${o.pairs} process pair(s) per framework`);
  const results: PairResult[] = [];
  for (let p = 0; p < o.pairs; p++) {
    for (const fw of o.frameworks) {
      const r = await pair(fw, o);
      results.push(r);
      const st = Object.keys(r.stats).length === 0 ? '' : `  checkpoints ${r.stats.taken} (${r.stats.inSpan ?? '?'} in the span), calm ${r.stats.calm ? 'on' : 'off'} (${r.stats.calms} episodes, ${r.stats.nudges ?? 0} nudges)`;
      console.log(`  pair ${p + 1}/${o.pairs} ${fw.padEnd(7)} bare ${r.bareUs.toFixed(1)} µs/req, ${o.variant} ${r.variantUs.toFixed(1)}: ${pc(r.ratio)}; slices median ${pc(median(r.sliceRatios))}${st}  (${Math.round((Date.now() - t0) / 1000)} s)`);
    }
  }
  const rows = o.frameworks.map((fw) => {
    const rs = results.filter((r) => r.framework === fw);
    const ratios = rs.map((r) => r.ratio);
    const slices = rs.flatMap((r) => r.sliceRatios);
    return [fw, median(rs.map((r) => r.bareUs)).toFixed(1), median(rs.map((r) => r.variantUs)).toFixed(1),
      `**${pc(median(ratios))}**`, ratios.map(pc).join(', '), `${pc(median(slices))} (${pc(q(slices, 0.25))}…${pc(q(slices, 0.75))})`];
  });
  console.log('');
  console.log(table(['framework', 'bare µs/req', `${o.variant} µs/req`, 'CPU added (median of pairs)', 'pairs', 'slice pairs: median (quartiles)'], rows));
  const file = writeResult('interleave', { machine: m, command: `npm run bench:interleave -- ${process.argv.slice(2).join(' ')}`, options: o, results, seconds: Math.round((Date.now() - t0) / 1000) });
  console.log(`\n${Math.round((Date.now() - t0) / 1000)} s; raw figures in ${file}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
