// One detection-benchmark server in a fresh process: the zoo under leakwatch (dev mode) on
// Express 5 or Fastify 5. It watches every route's verdict as traffic flows and reports, over
// IPC, when each verdict became right for good and whether a control was ever called growing.
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import Fastify from 'fastify';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import type { LeakMonitor } from '../../src/core/monitor';
import type { Detector } from '../../src/core/detector';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const zoo = require(path.join(__dirname, '..', '..', '..', 'examples', 'zoo', 'index.js'));

export interface Watched {
  key: string;
  name: string;
  kind: 'leak' | 'control';
}

export interface RouteOutcome {
  name: string;
  kind: 'leak' | 'control';
  verdict: string;
  reason: string;
  bytesPerRequest: number | null;
  low: number | null;
  high: number | null;
  externalBytesPerRequest: number | null;
  routeRequests: number;
  /** Process-wide request count when the verdict became right and stayed right (null: not right at the end). */
  rightAtTotal: number | null;
  /** Process-wide request count when a control was first called growing (null: never). */
  firstGrowingAtTotal: number | null;
  findings: Record<string, unknown>;
  /** Isolated samples taken of this route (all, and those used: arrivals === 1). */
  isolated: { taken: number; used: number; basis: string | null; heap?: number[]; arrivals?: number[] };
}

export const EXTRA_ROUTES = ['/extra/a', '/extra/b', '/extra/c'];

/** Right verdict for the scorecard: leaks `growing`; controls `stable`, or `warming-up` that is flattening out. */
export function isRight(kind: 'leak' | 'control', verdict: string, reason: string): boolean {
  if (kind === 'leak') return verdict === 'growing' || verdict === 'leaking';
  // A control may also be warming up for a reason that is not "too early": flattening out, or
  // growth still too small to tell a filling cache from a leak.
  return verdict === 'stable' || (verdict === 'warming-up' && (reason.includes('flattening') || reason.includes('still filling')));
}

async function main(): Promise<void> {
  const framework = process.argv[2];
  process.on('warning', () => { /* the listener leak makes Node warn: part of the zoo */ });
  let monitor: LeakMonitor;
  let port: number;
  let stop: () => Promise<void>;
  // --sampling N on the bench: the sampling heap profiler's interval (0 = off; default the option's).
  const sampling = process.env.DETECT_SAMPLING;
  const budget = process.env.DETECT_CPU_BUDGET;
  const calm = process.env.DETECT_CALM_BUDGET;
  const options = { notice: false, mode: 'dev' as const, autoProbe: false, workers: 20, ...(sampling ? { samplingInterval: Number(sampling) } : {}), ...(budget ? { cpuBudget: Number(budget) } : {}), ...(calm ? { calmBudget: Number(calm) } : {}) };
  if (framework === 'express') {
    const app = express();
    const mw = leakwatch(options);
    app.use(mw);
    zoo.mountExpress(app);
    for (const p of EXTRA_ROUTES) app.get(p, (_req, res) => { res.json({ ok: true }); });
    const server = http.createServer(app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
    monitor = mw.monitor;
    stop = async () => { mw.close(); server.closeAllConnections(); await new Promise((r) => server.close(r)); };
  } else {
    const app = Fastify();
    await app.register(fastifyLeakwatch, options);
    zoo.mountFastify(app);
    for (const p of EXTRA_ROUTES) app.get(p, async () => ({ ok: true }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    port = (app.server.address() as AddressInfo).port;
    monitor = (app as unknown as { leakwatch: LeakMonitor }).leakwatch;
    stop = async () => { await app.close(); };
  }

  // --isolate MS on the bench: sampled isolation on, with that budget per checkpoint (off by default).
  (monitor.features.detector as Detector).isolateBudgetMs = Number(process.env.DETECT_ISOLATE_MS ?? 0) || 0;
  const watched: Watched[] = [
    ...zoo.scenarios.map((s: { name: string; path: string; kind: 'leak' | 'control' }) => ({ key: 'GET ' + s.path, name: s.name, kind: s.kind })),
    ...EXTRA_ROUTES.map((p) => ({ key: 'GET ' + p, name: p.slice(1).replace('/', '-'), kind: 'control' as const })),
  ];
  const rightSince = new Map<string, number | null>();
  const firstGrowing = new Map<string, number | null>();
  const poll = (): void => {
    const total = monitor.recorder.totalRequests;
    for (const w of watched) {
      const s = monitor.recorder.routes.get(w.key);
      if (s === undefined) continue;
      const right = isRight(w.kind, s.verdict, s.verdictReason);
      if (!right) rightSince.set(w.key, null);
      else if ((rightSince.get(w.key) ?? null) === null) rightSince.set(w.key, total);
      if (w.kind === 'control' && s.verdict === 'growing' && (firstGrowing.get(w.key) ?? null) === null) firstGrowing.set(w.key, total);
    }
  };
  // With DETECT_DUMP set, keep every checkpoint (not just the detector's window) for offline tuning.
  const det0 = monitor.features.detector as Detector;
  const series: Array<{ total: number; heap: number; external: number; held: number; counts: Record<string, number>; objects: Record<string, number>; sampled: Record<string, number> }> = [];
  let seen = 0;
  // With DETECT_PROFILE set: the live sampled bytes under each route trampoline, broken down by the
  // frames below it, right after a checkpoint early in the run and at the end (diagnosis only).
  const profiles: Array<{ total: number; byRoute: Record<string, Record<string, number>> }> = [];
  let profSeen = 0;
  const profileNow = (): void => {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const insp = require('node:inspector') as typeof import('node:inspector');
    const ses = new insp.Session();
    ses.connect();
    let prof: any;
    ses.post('HeapProfiler.getSamplingProfile', {}, (err, res) => { if (!err) prof = (res as any).profile; });
    ses.disconnect();
    if (prof === undefined) return;
    const names = new Map<number, string>();
    for (const [id, st] of monitor.attribution?.entries() ?? []) names.set(id, st.key);
    const byRoute: Record<string, Record<string, number>> = {};
    const walk = (node: any, route: string | undefined, chain: string[]): void => {
      const fn: string = node.callFrame.functionName;
      let r = route;
      let c = chain;
      if (fn.startsWith('leakwatch$route$')) { r = names.get(Number(fn.slice(16))) ?? fn; c = []; } else if (r !== undefined) {
        c = [...chain, `${fn || '(anon)'}@${String(node.callFrame.url).split('/').slice(-2).join('/')}:${node.callFrame.lineNumber}`];
      }
      if (r !== undefined && node.selfSize > 0) {
        const k = c.length <= 5 ? c.join(' > ') : [...c.slice(0, 2), '…', ...c.slice(-3)].join(' > ');
        const m = (byRoute[r] ??= {});
        m[k] = (m[k] ?? 0) + node.selfSize;
      }
      for (const ch of node.children) walk(ch, r, c);
    };
    walk(prof.head, undefined, []);
    profiles.push({ total: monitor.recorder.totalRequests, byRoute });
  };
  const timer = setInterval(() => {
    poll();
    if (process.env.DETECT_PROFILE && det0.taken !== profSeen) {
      profSeen = det0.taken;
      const t = monitor.recorder.totalRequests;
      if ((profiles.length === 0 && t >= Number(process.env.DETECT_PROFILE_AT ?? 600)) || process.env.DETECT_PROFILE_ALL) profileNow();
    }
    if (process.env.DETECT_DUMP && det0.taken !== seen) {
      seen = det0.taken;
      const w = det0.window();
      const i = w.heap.length - 1;
      const counts: Record<string, number> = {};
      w.routes.forEach((k, r) => { counts[k] = w.counts[r][i]; });
      const objects: Record<string, number> = {};
      for (const [k, v] of Object.entries(w.objects ?? {})) objects[k] = v[i];
      // The sampling heap profiler's live bytes per route (NaN between profile reads: left out).
      const sampled: Record<string, number> = {};
      w.routes.forEach((k, r) => { const v = w.sampled[r]?.[i]; if (v !== undefined && Number.isFinite(v)) sampled[k] = v; });
      series.push({ total: monitor.recorder.totalRequests, heap: w.heap[i], external: (w.external as number[])[i], held: w.held[i], counts, objects, sampled });
    }
  }, 20);

  process.on('message', (msg: { cmd: string }) => {
    // --calm-first: whether the detector calmed down during the prelude of controls.
    if (msg.cmd === 'calm') { process.send!({ calm: { ...monitor.processFindings.calm }, total: monitor.recorder.totalRequests, taken: (monitor.features.detector as Detector).taken }); return; }
    if (msg.cmd !== 'report') return;
    poll();
    clearInterval(timer);
    const outcomes: RouteOutcome[] = [];
    for (const w of watched) {
      const s = monitor.recorder.routes.get(w.key);
      if (s === undefined) continue;
      outcomes.push({
        name: w.name,
        kind: w.kind,
        verdict: s.verdict,
        reason: s.verdictReason,
        bytesPerRequest: s.estimate?.bytesPerRequest ?? null,
        low: s.estimate?.low ?? null,
        high: s.estimate?.high ?? null,
        externalBytesPerRequest: s.estimate?.externalBytesPerRequest ?? null,
        routeRequests: s.requests,
        rightAtTotal: rightSince.get(w.key) ?? null,
        firstGrowingAtTotal: firstGrowing.get(w.key) ?? null,
        findings: s.findings,
        isolated: (() => { const x = (monitor.features.detector as Detector).samplesOf(s); return { taken: x.total, used: x.arrivals.filter((a) => a === 1).length, basis: s.estimate?.basis.method ?? null, heap: x.heap, arrivals: x.arrivals }; })(),
      });
    }
    const det = monitor.features.detector as Detector;
    if (process.env.DETECT_DUMP) require('node:fs').writeFileSync(`${process.env.DETECT_DUMP}-${framework}-${series.length}.json`, JSON.stringify(series));
    if (process.env.DETECT_PROFILE) {
      profileNow();
      require('node:fs').writeFileSync(`${process.env.DETECT_PROFILE}-${framework}-${monitor.recorder.totalRequests}.json`, JSON.stringify(profiles));
    }
    process.send!({
      outcomes,
      total: monitor.recorder.totalRequests,
      detector: { taken: det.taken, skipped: det.skipped, costMs: det.costMs, drainMs: det.drainMs, gcMs: det.gcMs, analyzeMs: det.analyzeMs, profileMs: det.profileMs, isolated: det.isolatedSamples, isolateTimeouts: det.isolateTimeouts, heapScale: det.last?.heapScale ?? null },
      process: { ...monitor.processFindings, history: monitor.processFindings.history.length },
      gate: { held: monitor.gate.held, longestHoldMs: monitor.gate.longestHoldMs },
    }, () => { void stop().then(() => process.exit(0)); });
  });
  process.send!({ port });
}

if (require.main === module) main().catch((e) => { console.error(e); process.exit(1); });
