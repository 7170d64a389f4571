import { lineChart } from './charts';
import { formatBytes } from './format';

/** A probe report reduced to what the route page shows. Every string is raw: views escape. */
export interface ProbeView {
  verdict: string;
  iterations: number | null;
  /** Iterations actually measured: more than asked when a periodic leak needed five whole periods. */
  measuredIterations: number | null;
  /** The leak's period in iterations (a step every Nth), or null. */
  period: number | null;
  retainedBytesPerIteration: number | null;
  heapBytesPerIteration: number | null;
  externalBytesPerIteration: number | null;
  chart: string | null;
  newObjects: Array<{ constructor: string; countPerIteration: number | null; bytesPerIteration: number | null; retainerPath: string | null }>;
  newGlobals: string[];
  /** Lines of the `diff -u` listing with their kind, for colouring. */
  scopeDiff: Array<{ kind: 'add' | 'del' | 'hunk' | 'head' | 'ctx'; text: string }>;
  resources: Array<{ type: string; before: string; after: string }>;
  /** Fields the page does not know, shown as JSON so nothing is hidden. */
  extra: string | null;
  error: string | null;
}

const numOrNull = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null);

function retainer(v: unknown): string | null {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map((x) => (typeof x === 'string' ? x : JSON.stringify(x))).join(' → ');
  return null;
}

function diffLines(text: string): ProbeView['scopeDiff'] {
  return text.split('\n').slice(0, 2000).map((l) => ({
    kind: l.startsWith('+++') || l.startsWith('---') ? 'head' : l.startsWith('@@') ? 'hunk' : l.startsWith('+') ? 'add' : l.startsWith('-') ? 'del' : 'ctx',
    text: l,
  }));
}

function resourceRows(v: unknown): ProbeView['resources'] {
  if (v === null || typeof v !== 'object') return [];
  const o = v as Record<string, unknown>;
  const str = (x: unknown) => (x === undefined ? '' : typeof x === 'number' ? String(x) : JSON.stringify(x));
  if (o.before && o.after && typeof o.before === 'object' && typeof o.after === 'object') {
    const b = o.before as Record<string, unknown>;
    const a = o.after as Record<string, unknown>;
    return [...new Set([...Object.keys(b), ...Object.keys(a)])].map((type) => ({ type, before: str(b[type]), after: str(a[type]) }));
  }
  if (Array.isArray(v)) {
    return v.filter((x) => x && typeof x === 'object').map((x) => {
      const r = x as Record<string, unknown>;
      return { type: String(r.type ?? r.name ?? '?'), before: str(r.before), after: str(r.after ?? r.delta ?? r.count) };
    });
  }
  return Object.keys(o).map((type) => ({ type, before: '', after: str(o[type]) }));
}

const KNOWN = new Set(['verdict', 'iterations', 'measuredIterations', 'period', 'retainedBytesPerIteration', 'heapBytesPerIteration', 'externalBytesPerIteration',
  'newObjects', 'newGlobals', 'scopeDiff', 'bytesPerIterationSeries', 'resources', 'method', 'route', 'error']);

/**
 * Reduces a probe report (the probe API's JSON) to the route page's view. Tolerant: a field
 * that is missing or shaped differently is left out rather than breaking the page.
 *
 * @example
 * ```ts
 * probeView({ verdict: 'leaking', iterations: 30, retainedBytesPerIteration: 2100, newObjects: [], newGlobals: ['FooB'] });
 * ```
 */
export function probeView(report: unknown): ProbeView | null {
  if (report === null || typeof report !== 'object') return null;
  const r = report as Record<string, unknown>;
  const series = Array.isArray(r.bytesPerIterationSeries) ? r.bytesPerIterationSeries.filter((x): x is number => typeof x === 'number') : [];
  const objs = Array.isArray(r.newObjects) ? r.newObjects : [];
  const extra: Record<string, unknown> = {};
  for (const k of Object.keys(r)) if (!KNOWN.has(k)) extra[k] = r[k];
  let extraText: string | null = null;
  if (Object.keys(extra).length > 0) {
    try { extraText = JSON.stringify(extra, null, 2); } catch { extraText = null; }
    if (extraText && extraText.length > 6000) extraText = extraText.slice(0, 6000) + '\n… (truncated)';
  }
  const heap = numOrNull(r.heapBytesPerIteration) ?? numOrNull((r.heap as { bytesPerIteration?: unknown } | undefined)?.bytesPerIteration);
  return {
    verdict: typeof r.verdict === 'string' ? r.verdict : 'unknown',
    iterations: numOrNull(r.iterations),
    measuredIterations: numOrNull(r.measuredIterations),
    period: numOrNull(r.period) !== null && (r.period as number) > 0 ? (r.period as number) : null,
    retainedBytesPerIteration: numOrNull(r.retainedBytesPerIteration),
    heapBytesPerIteration: heap,
    externalBytesPerIteration: numOrNull(r.externalBytesPerIteration),
    chart: series.length > 0
      ? lineChart(series.map((y, i) => ({ x: i + 1, y })), { title: 'Retained bytes per probe iteration', formatY: formatBytes, formatX: (x) => `#${Math.round(x)}`, bars: true, height: 160 })
      : null,
    newObjects: objs.slice(0, 100).filter((o): o is Record<string, unknown> => o !== null && typeof o === 'object').map((o) => ({
      constructor: String(o.constructor === Object ? o.name ?? '?' : o.constructor ?? o.name ?? '?'),
      countPerIteration: numOrNull(o.countPerIteration),
      bytesPerIteration: numOrNull(o.bytesPerIteration),
      retainerPath: retainer(o.retainerPath ?? o.retainers),
    })),
    newGlobals: Array.isArray(r.newGlobals) ? r.newGlobals.slice(0, 200).map(String) : [],
    scopeDiff: typeof r.scopeDiff === 'string' && r.scopeDiff !== '' ? diffLines(r.scopeDiff) : [],
    resources: resourceRows(r.resources),
    extra: extraText,
    error: typeof r.error === 'string' ? r.error : null,
  };
}

/** The probe progress (`GET {path}/api/probe`) reduced to a progress bar. */
export interface ProbeProgress { running: boolean; done: number; total: number; phase: string; method: string | null; route: string | null; error: string | null }

export function probeProgress(v: unknown): ProbeProgress | null {
  if (v === null || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  return {
    running: o.running === true,
    done: numOrNull(o.done) ?? 0,
    total: numOrNull(o.total) ?? 0,
    phase: typeof o.phase === 'string' ? o.phase : '',
    method: typeof o.method === 'string' ? o.method : null,
    route: typeof o.route === 'string' ? o.route : null,
    error: typeof o.error === 'string' ? o.error : null,
  };
}
