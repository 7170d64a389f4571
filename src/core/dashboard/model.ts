import type { LeakMonitor } from '../monitor';
import type { RouteStats } from '../recorder';
import { summarize, byConcern, type RouteSummary } from '../summary';
import { processMemory } from '../http/api';
import type { GcEvent } from '../gcwatch';
import { formatBytes, formatCount, projectionText } from './format';
import { lineChart, sparkline, type Marker } from './charts';
import { redactHeaders, redactUrl } from './redact';
import { performance } from 'node:perf_hooks';

/** Everything a route row of the overview shows. Strings are raw: the views escape them. */
export interface RouteRow {
  s: RouteSummary;
  href: string;
  spark: string;
  projection: string | null;
  ruledOut: string[];
  findingLines: string[];
}

/** The route page URL for a route key, under the mount point as the browser sees it. */
export function routeHref(base: string, key: string): string {
  return `${base}/routes/${encodeURIComponent(key)}`;
}

function findingString(f: Record<string, unknown>, ...path: string[]): string | null {
  let v: unknown = f;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return null;
    v = (v as Record<string, unknown>)[p];
  }
  return typeof v === 'string' && v !== '' ? v : null;
}

/** The detector's projection text, else the seed's arithmetic on the estimate. */
export function routeProjection(s: RouteSummary, workers: number): string | null {
  return findingString(s.findings, 'projection', 'text')
    ?? (typeof s.findings.projection === 'string' ? s.findings.projection : null)
    ?? (s.verdict === 'growing' || s.verdict === 'leaking' ? projectionText(s.retainedBytesPerRequest, workers) : null);
}

/**
 * What the verdict rests on: the alternatives that were excluded. Only states what the
 * detector's findings say; says nothing rather than guess.
 */
export function ruledOut(s: RouteSummary): string[] {
  const out: string[] = [];
  const f = s.findings;
  if (Array.isArray(f.ruledOut)) for (const r of f.ruledOut) if (typeof r === 'string') out.push(r);
  if (out.length > 0) return out;
  const n = s.basis?.checkpoints ?? 0;
  if (s.verdict === 'growing' || s.verdict === 'leaking') {
    out.push(n > 0 ? `warm-up: still growing after ${formatCount(n)} checkpoints` : 'warm-up: growth continued past the warm-up window');
    if (f.dataDependent === false) out.push('data-dependent growth: the heap never fell back');
  } else if (f.dataDependent === true) {
    out.push('a leak: growth follows the data, it rises and falls');
  }
  if (s.verdict === 'leaking' && typeof f.probe !== 'undefined') out.push('noise: confirmed by an isolation probe');
  return out;
}

/** Findings beyond the heap estimate: Buffer/native growth, a count that keeps climbing. */
export function findingLines(s: RouteSummary): string[] {
  const out: string[] = [];
  const f = s.findings;
  const native = f.nativeGrowth as { externalBytesPerRequest?: unknown } | undefined;
  if (native && typeof native.externalBytesPerRequest === 'number') {
    out.push(`External (Buffer/native) memory grows ${formatBytes(native.externalBytesPerRequest)} per request, outside the JS heap`);
  }
  const obj = f.objectGrowth as { type?: unknown; perRequest?: unknown } | undefined;
  if (obj && typeof obj.type === 'string' && typeof obj.perRequest === 'number') {
    out.push(`${obj.type} count grows ${obj.perRequest.toFixed(2)} per request`);
  }
  return out;
}

export function routeRows(monitor: LeakMonitor, base: string): RouteRow[] {
  const workers = monitor.options.workers;
  return [...monitor.recorder.routes.values()]
    .map((st) => ({ st, s: summarize(st) }))
    .sort((a, b) => byConcern(a.s, b.s))
    .map(({ st, s }) => ({
      s,
      href: routeHref(base, s.key),
      spark: sparkline(st.heapDelta.toArray().slice(-60), `${s.key}: heap delta per request (garbage made, not retention)`),
      projection: routeProjection(s, workers),
      ruledOut: ruledOut(s),
      findingLines: findingLines(s),
    }));
}

/** The live-heap-after-GC chart: one dot per full GC, forced checkpoints and natural GCs marked. */
export function liveHeapChart(history: Array<[number, number, number]>, gcs: GcEvent[], now = Date.now()): string {
  const pts = history.map(([t, b]) => ({ x: (t - now) / 1000, y: b }));
  const markers: Marker[] = [];
  const from = history.length > 0 ? history[0][0] : Infinity;
  for (const [t, , forced] of history) markers.push({ x: (t - now) / 1000, kind: forced ? 'mark-forced' : 'mark-natural', label: forced ? 'checkpoint (forced full GC)' : 'natural full GC' });
  // Natural mark-compacts seen by the observer that the detector did not record as points.
  for (const g of gcs) if (g.kind === 'major' && !g.forced && g.at >= from) markers.push({ x: (g.at - now) / 1000, kind: 'mark-gc', label: `major GC, ${g.durationMs.toFixed(1)} ms` });
  return lineChart(pts, {
    title: 'Live JS heap after each full GC',
    formatY: formatBytes,
    formatX: (x) => (Math.abs(x) < 0.5 ? 'now' : `${Math.round(x)} s`),
    markers: markers.slice(-200),
    dots: true,
  });
}

export function memoryCards(monitor: LeakMonitor): Array<{ key: string; label: string; value: string; note: string }> {
  const m = processMemory();
  const pct = (n: number) => `${((n / m.heapLimit) * 100).toFixed(1)}% of heap limit`;
  return [
    { key: 'rss', label: 'RSS', value: formatBytes(m.rss), note: 'resident set: everything the OS gave the process' },
    { key: 'heapUsed', label: 'Heap used', value: formatBytes(m.heapUsed), note: pct(m.heapUsed) + ', garbage included' },
    { key: 'heapTotal', label: 'Heap total', value: formatBytes(m.heapTotal), note: 'reserved by V8' },
    { key: 'external', label: 'External', value: formatBytes(m.external), note: 'C++ objects and Buffers held by JS' },
    { key: 'arrayBuffers', label: 'ArrayBuffers', value: formatBytes(m.arrayBuffers), note: 'part of external' },
    { key: 'heapLimit', label: 'Heap limit', value: formatBytes(m.heapLimit), note: `V8 limit; live heap ${monitor.processFindings.liveHeapBytes === null ? 'not measured yet' : formatBytes(monitor.processFindings.liveHeapBytes)}` },
  ];
}

/** A JSON-ish value for display, with credential-looking keys blanked, bounded in size. */
export function displayBody(body: unknown): string | null {
  if (body === undefined || body === null) return null;
  const seen = new WeakSet<object>();
  const clean = (v: unknown, depth: number): unknown => {
    if (v === null || typeof v !== 'object') return v;
    if (seen.has(v) || depth > 6) return '[…]';
    seen.add(v);
    if (Array.isArray(v)) return v.slice(0, 50).map((x) => clean(x, depth + 1));
    const o: Record<string, unknown> = {};
    for (const k of Object.keys(v).slice(0, 100)) {
      o[k] = /pass(word)?|secret|token|api[-_]?key|auth|session|cookie|credential|card|cvv|ssn/i.test(k) ? '[redacted]' : clean((v as Record<string, unknown>)[k], depth + 1);
    }
    return o;
  };
  let text: string;
  try { text = typeof body === 'string' ? body : JSON.stringify(clean(body, 0), null, 2); } catch { text = String(body); }
  return text.length > 4000 ? text.slice(0, 4000) + '\n… (truncated)' : text;
}

export function capturedRequest(st: RouteStats): null | { method: string; url: string; headers: Array<[string, string]>; body: string | null; at: number } {
  const r = st.lastRequest;
  if (!r) return null;
  return {
    method: r.method,
    url: redactUrl(r.url),
    headers: redactHeaders(r.headers),
    body: displayBody(r.body),
    at: Math.round(performance.timeOrigin + r.at),
  };
}
