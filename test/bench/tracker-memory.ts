/**
 * `npm run bench:memory [-- --quick]`: leakwatch's own heap, the tracker's memory.
 *
 * A fresh child process per mode (dev, production) builds a full monitor (recorder, detector,
 * metrics, dashboard, as an app gets them), records requests through it in-process and reads
 * the live heap after forced full GCs:
 *   - the monitor with no routes yet, then with 10, 100 and 1,000 routes (one request each);
 *   - after 1,000,000 requests spread over the 1,000 routes, read at 10k, 100k and 1M;
 *   - then after a full window of detector checkpoints (one request per route between two), which
 *     builds the detector's per-route state: request-count rings, verdicts, estimates. Taken
 *     explicitly: whether a timer's checkpoint landed in the run varied from run to run, and with
 *     it the last figure.
 * Everything the driver itself keeps (route names, request objects) is built before the
 * baseline, so the figures are leakwatch's own. The last request of each route is kept for replay
 * by design; its headers object belongs to the app's request and is not counted here (the
 * driver shares 64 of them).
 */
import { fork } from 'node:child_process';
import v8 from 'node:v8';
import { LeakMonitor } from '../../src/core/monitor';
import { forceFullGc } from '../../src/core/gc';
import { WINDOW, type Detector } from '../../src/core/detector';
import { fix, machine, signed, table, writeResult } from './util';

interface Point { label: string; routes: number; requests: number; heapBytes: number; externalBytes: number }

function live(): { heap: number; external: number } {
  // Three full GCs: weak callbacks and finalizers of the first free more on the next.
  forceFullGc(); forceFullGc(); forceFullGc();
  const hs = v8.getHeapStatistics() as v8.HeapInfo & { external_memory?: number };
  return { heap: hs.used_heap_size, external: hs.external_memory ?? 0 };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

async function child(mode: 'dev' | 'production', total: number): Promise<void> {
  const ROUTES = 1000;
  const routes = Array.from({ length: ROUTES }, (_, i) => `/api/v1/resource${i}/:id`);
  const reqs = Array.from({ length: 64 }, (_, i) => ({
    method: 'GET',
    url: `/api/v1/resource${i}/${1000 + i}?page=${i}`,
    headers: {
      host: 'localhost:3000', 'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) bench/1.0', accept: 'application/json',
      'accept-encoding': 'gzip, deflate, br', 'accept-language': 'en-US,en;q=0.9', connection: 'keep-alive',
      cookie: `session=${'s'.repeat(32)}${i}`, 'x-request-id': `req-${i}-${'r'.repeat(24)}`,
    },
  }));
  const points: Point[] = [];
  const base = live();
  const at = (label: string, nRoutes: number, requests: number): void => {
    const l = live();
    points.push({ label, routes: nRoutes, requests, heapBytes: l.heap - base.heap, externalBytes: l.external - base.external });
  };
  const monitor = new LeakMonitor({ mode, enabled: true, notice: false, maxRoutes: ROUTES, autoProbe: false, ...(process.env.BENCH_SAMPLING !== undefined ? { samplingInterval: Number(process.env.BENCH_SAMPLING) } : {}) });
  let served = 0;
  // Each route's handler, as the adapters would wrap it after the route's first request (dev mode:
  // a trampoline per route for the sampling heap profiler, up to its cap). Built before the
  // baseline: the app owns its handlers; the trampolines leakwatch adds are counted.
  const handlers = routes.map((_, i) => function handler(a: unknown): number { return i + (a ? 1 : 0); });
  // Production mode counts most requests as the Fastify adapter does (Recorder.countsNext): no
  // per-request state; the request waits on its connection (core/counted.ts), which the app owns.
  const rec = monitor.recorder;
  const serve = (route: string, i: number): void => {
    if (rec.counts) {
      const known = rec.routeFor('GET', route);
      if (rec.countsNext(known)) {
        rec.startCounted();
        rec.finishCounted(known, 200, false);
        served++;
        return;
      }
    }
    const state = monitor.start(rec.counts ? true : undefined);
    const stats = monitor.finish(state, 'GET', route, 200, false, reqs[i & 63] as never, undefined);
    if (stats !== undefined && stats.attributionId === -1 && monitor.attribution !== undefined) {
      const context: { handler?: unknown } = { handler: handlers[i % ROUTES] };
      monitor.attribution.wrapFastifyRoute(stats, context);
      // Called once, as the next request would: a trampoline's bytecode is compiled lazily.
      (context.handler as (a: unknown) => number)(1);
    }
    served++;
  };
  await tick();
  at('monitor, no routes yet', 0, 0);
  let seen = 0;
  for (const n of [10, 100, 1000]) {
    for (; seen < n; seen++) serve(routes[seen], seen);
    await tick();
    at(`${n} routes`, n, served);
  }
  const marks = new Set([10_000, 100_000, total]);
  for (let i = 0; served < total; i++) {
    serve(routes[i % ROUTES], i);
    // Yield now and then so that the detector's timers run, as they would in a server.
    if ((i & 4095) === 0) await tick();
    if (marks.has(served)) at(`${served.toLocaleString('en-US')} requests`, ROUTES, served);
  }
  // A full window of checkpoints with traffic between them, so that every route has its verdict
  // and estimate (at 1,000 routes the regression needs ~52 checkpoints before it judges).
  const detector = monitor.features.detector as Detector;
  for (let k = 0; k < WINDOW; k++) {
    for (let i = 0; i < ROUTES; i++) serve(routes[i], i);
    await detector.checkpoint();
    await tick();
  }
  at(`then ${WINDOW} detector checkpoints`, ROUTES, served);
  monitor.close();
  process.send!({ mode, points, checkpoints: monitor.processFindings.checkpoints });
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const total = quick ? 200_000 : 1_000_000;
  if (process.argv[2] === '--child') {
    await child(process.argv[3] as 'dev' | 'production', Number(process.argv[4]));
    return;
  }
  const results: Array<{ mode: string; points: Point[]; checkpoints: number }> = [];
  for (const mode of ['dev', 'production']) {
    const r = await new Promise<(typeof results)[number]>((resolve, reject) => {
      const cp = fork(__filename, ['--child', mode, String(total)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      cp.once('message', (m) => resolve(m as (typeof results)[number]));
      cp.once('exit', (code) => { if (code !== 0) reject(new Error(`child ${mode} exited ${code}`)); });
    });
    results.push(r);
  }
  const mb = (b: number): string => fix(b / 2 ** 20, 2);
  console.log(`\nbench:memory  ${new Date().toISOString()}  node ${process.version}\n`);
  const labels = results[0].points.map((p) => p.label);
  console.log(table(
    ['leakwatch memory over the baseline, after full GCs', ...results.flatMap((r) => [`${r.mode}: JS heap MB`, `${r.mode}: external MB`, `${r.mode}: total MB`])],
    labels.map((label, i) => [label, ...results.flatMap((r) => {
      const p = r.points[i];
      return [mb(p.heapBytes), mb(p.externalBytes), mb(p.heapBytes + p.externalBytes)];
    })]),
  ));
  for (const r of results) {
    const p = (l: string): Point => r.points.find((x) => x.label === l)!;
    const tot = (x: Point): number => x.heapBytes + x.externalBytes;
    const perRoute = (tot(p('1000 routes')) - tot(p('100 routes'))) / 900;
    const checkpointed = r.points[r.points.length - 1];
    const last = r.points[r.points.length - 2];
    const growth = tot(last) - tot(p('1000 routes'));
    const detector = tot(checkpointed) - tot(last);
    console.log(`${r.mode}: ${fix(perRoute / 1024, 2)} KB per route (heap + external); ${signed(growth / 1024, 0)} KB from 1,000 routes to ${last.requests.toLocaleString('en-US')} requests; ${r.checkpoints} detector checkpoints ran; the last ${WINDOW} of them added ${signed(detector / 1024, 0)} KB`);
  }
  const file = writeResult('tracker-memory', { machine: machine(), total, results });
  console.log(`raw figures in ${file}`);
}

main().catch((e) => { console.error(e); process.exit(1); });
