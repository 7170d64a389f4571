/**
 * `npm run bench:soak`: 1,000,000 requests over 100,000 distinct URLs (param routes, routes past
 * maxRoutes, unmatched URLs on three methods, POSTs with bodies) plus an isolation probe every
 * 50,000 requests, driven in-process through the real adapters (see test/safety/soakDriver.ts).
 * Each framework runs twice in fresh processes, with and without leakwatch; the tracker's own heap
 * is the difference of the forced-GC live heaps at the same point of the same traffic.
 *
 *   npm run bench:soak                       # both frameworks, 1,000,000 requests each
 *   node dist/test/bench/soak.js --requests 200000 --framework fastify
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startSoakApp, drive, liveHeap, type SoakFlavour } from '../safety/soakDriver';

const DISTINCT = 100_000;
const PROBE_EVERY = 50_000;
const MB = 1024 * 1024;

interface Point { requests: number; heap: number }
interface ChildResult {
  flavour: SoakFlavour; leakwatch: boolean; requests: number; ms: number; points: Point[];
  probes: number; probeStatuses: Record<string, number>; statuses: Record<string, number>;
  routes: number; overflowed: number; recorded: number; faults: number; inFlight: number; unexpected: number;
}

async function child(flavour: SoakFlavour, withLw: boolean, requests: number): Promise<ChildResult> {
  const app = await startSoakApp(flavour, withLw);
  const points: Point[] = [{ requests: 0, heap: liveHeap() }];
  const marks = [100_000, 250_000, 500_000, 750_000, 1_000_000].filter((x) => x < requests).concat([requests]);
  const statuses: Record<string, number> = {};
  const probeStatuses: Record<string, number> = {};
  let probes = 0;
  let done = 0;
  const t0 = performance.now();
  for (const mark of marks) {
    const r = await drive(app, done, mark - done, DISTINCT, { probeEvery: withLw ? PROBE_EVERY : 0 });
    for (const [k, v] of Object.entries(r.statuses)) statuses[k] = (statuses[k] ?? 0) + v;
    for (const [k, v] of Object.entries(r.probeStatuses)) probeStatuses[k] = (probeStatuses[k] ?? 0) + v;
    probes += r.probes;
    done = mark;
    points.push({ requests: done, heap: liveHeap() });
    process.stderr.write(`  ${flavour} ${withLw ? 'leakwatch' : 'bare'}: ${done.toLocaleString('en')} requests, live heap ${(points[points.length - 1].heap / MB).toFixed(2)} MB\n`);
  }
  const ms = performance.now() - t0;
  const m = app.monitor;
  const result: ChildResult = {
    flavour, leakwatch: withLw, requests, ms, points, probes, probeStatuses, statuses,
    routes: m?.recorder.routes.size ?? 0, overflowed: m?.recorder.overflowed ?? 0, recorded: m?.recorder.totalRequests ?? 0,
    faults: m?.faults ?? 0, inFlight: m?.recorder.inFlight ?? 0, unexpected: app.unexpected(),
  };
  await app.close();
  return result;
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] !== undefined ? process.argv[i + 1] : def;
}

const fmtMB = (b: number) => `${(b / MB).toFixed(2)} MB`;

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    const r = await child(process.argv[3] as SoakFlavour, process.argv[4] === 'leakwatch', Number(process.argv[5]));
    process.stdout.write(JSON.stringify(r) + '\n');
    return;
  }
  const requests = Number(arg('requests', '1000000'));
  const which = arg('framework', 'both');
  const flavours: SoakFlavour[] = which === 'express' ? ['Express 5'] : which === 'fastify' ? ['Fastify 5'] : ['Fastify 5', 'Express 5'];
  const results: ChildResult[] = [];
  for (const f of flavours) {
    for (const variant of ['bare', 'leakwatch']) {
      process.stderr.write(`${f}, ${variant}: ${requests.toLocaleString('en')} requests over ${DISTINCT.toLocaleString('en')} distinct URLs…\n`);
      const r = spawnSync(process.execPath, [__filename, '--child', f, variant, String(requests)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 16 * MB });
      if (r.status !== 0) throw new Error(`${f} ${variant} failed with ${r.status}`);
      results.push(JSON.parse(r.stdout.trim().split('\n').pop() as string));
    }
  }
  const lines: string[] = [];
  lines.push(`Soak: ${requests.toLocaleString('en')} requests over ${DISTINCT.toLocaleString('en')} distinct URLs per run, a probe every ${PROBE_EVERY.toLocaleString('en')} (leakwatch runs), in-process through the real adapters.`);
  lines.push(`Node ${process.version}, ${new Date().toISOString().slice(0, 10)}. Live heap = used heap after two forced full GCs. Tracker heap = leakwatch run minus bare run at the same point.`);
  lines.push('');
  lines.push('| framework | requests | probes (200) | recorded | lost | routes (max 200 + buckets) | overflowed | faults | tracker heap at start | tracker heap after 100k | tracker heap at end | leakwatch run heap 100k → end | µs/request (bare / leakwatch) |');
  lines.push('|---|---|---|---|---|---|---|---|---|---|---|---|---|');
  for (const f of flavours) {
    const bare = results.find((r) => r.flavour === f && !r.leakwatch)!;
    const lw = results.find((r) => r.flavour === f && r.leakwatch)!;
    const at = (r: ChildResult, n: number) => r.points.find((p) => p.requests === n)?.heap ?? NaN;
    const first = Math.min(100_000, requests);
    const tracker = (n: number) => at(lw, n) - at(bare, n);
    const grow = at(lw, requests) - at(lw, first);
    lines.push(`| ${f} | ${requests.toLocaleString('en')} | ${lw.probes} (${lw.probeStatuses['200'] ?? 0}) | ${lw.recorded.toLocaleString('en')} | ${requests - lw.recorded} | ${lw.routes} | ${lw.overflowed.toLocaleString('en')} | ${lw.faults} | ${fmtMB(tracker(0))} | ${fmtMB(tracker(first))} | ${fmtMB(tracker(requests))} | ${grow >= 0 ? '+' : ''}${(grow / 1024).toFixed(0)} KB (${(grow / Math.max(1, requests - first)).toFixed(2)} B/request) | ${(bare.ms / requests * 1000).toFixed(0)} / ${(lw.ms / requests * 1000).toFixed(0)} |`);
  }
  lines.push('');
  lines.push('Live heap by point (MB), bare / leakwatch:');
  for (const f of flavours) {
    const bare = results.find((r) => r.flavour === f && !r.leakwatch)!;
    const lw = results.find((r) => r.flavour === f && r.leakwatch)!;
    lines.push(`- ${f}: ` + lw.points.map((p, i) => `${p.requests.toLocaleString('en')}: ${(bare.points[i]?.heap / MB).toFixed(2)} / ${(p.heap / MB).toFixed(2)}`).join('; '));
  }
  const text = lines.join('\n');
  console.log(text);
  const out = path.resolve(__dirname, '..', '..', '..', 'bench-results'); // git-ignored
  try {
    fs.mkdirSync(out, { recursive: true });
    fs.writeFileSync(path.join(out, 'soak.json'), JSON.stringify({ date: new Date().toISOString(), node: process.version, requests, distinct: DISTINCT, probeEvery: PROBE_EVERY, results }, null, 2));
  } catch { /* results are printed anyway */ }
}

main().catch((e) => { console.error(e); process.exit(1); });
