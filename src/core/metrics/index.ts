import v8 from 'node:v8';
import { Counter, Gauge, Registry } from 'prom-client';
import type { Feature, LeakMonitor } from '../monitor';
import type { RouteStats } from '../recorder';
import { sendText } from '../http/respond';
import { SERIES, type HistogramDef, type MetricSource, type ScalarDef, type SeriesDef } from './series';

export { SERIES, VERDICTS, probeFacts } from './series';
export type { Aggregator, SeriesDef, MetricSource, RouteLike } from './series';
export { HEAP_DELTA_BOUNDS, DeltaHistogram } from './histogram';

/** What `monitor.features.metrics` holds. */
export interface MetricsFeature extends Feature {
  /** leakwatch's own registry: exactly the series `{path}/metrics` serves. */
  readonly registry: Registry;
  /** The user's registry (the `registry` option) the same series are also registered on, if any. */
  readonly userRegistry: Registry | undefined;
  /** Full metric names, prefix included. */
  readonly names: readonly string[];
  /** Unregisters every leakwatch metric from both registries. Idempotent. */
  close(): void;
}

/** The minimal metric shape prom-client's Registry and AggregatorRegistry work with. */
interface RegistrableMetric {
  name: string;
  help: string;
  type: string;
  aggregator: string;
  get(): Promise<unknown> | unknown;
  reset(): void;
}

/**
 * A histogram whose buckets are already counted (by RouteStats' DeltaHistogram on the request
 * path). prom-client's Histogram can only be filled by `observe()`, which hashes labels on every
 * call; this one just reports the counters at scrape time in the same JSON shape, so prom-client's
 * exposition, label escaping and AggregatorRegistry work on it unchanged.
 */
class PrecountedHistogram implements RegistrableMetric {
  readonly type = 'histogram';
  constructor(readonly name: string, readonly help: string, readonly aggregator: string,
    private readonly bounds: readonly number[], private readonly values: () => ReturnType<HistogramDef['collect']>) {}

  get(): { name: string; help: string; type: string; aggregator: string; values: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> } {
    const out: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    const bucket = this.name + '_bucket';
    for (const s of this.values()) {
      for (let i = 0; i < this.bounds.length; i++) out.push({ labels: { ...s.labels, le: this.bounds[i] }, value: s.cumulative[i], metricName: bucket });
      out.push({ labels: { ...s.labels, le: '+Inf' }, value: s.count, metricName: bucket });
      out.push({ labels: { ...s.labels }, value: s.sum, metricName: this.name + '_sum' });
      out.push({ labels: { ...s.labels }, value: s.count, metricName: this.name + '_count' });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: out };
  }

  reset(): void { /* the counts live in RouteStats; a registry reset cannot rewind them */ }
}

/** Which leakwatch instance holds each prefix on a registry; keyed by a global symbol so that two copies of leakwatch in one process see each other. */
const OWNERS = Symbol.for('leakwatch.metrics.owners');
type Owned = Registry & { [OWNERS]?: Map<string, LeakMonitor> };

function claim(registry: Registry, prefix: string, names: readonly string[], monitor: LeakMonitor): void {
  const r = registry as Owned;
  const previous = r[OWNERS]?.get(prefix);
  if (previous !== undefined && previous !== monitor && !previous.closed) {
    throw new Error(`leakwatch: another leakwatch instance that is still open already exports metrics with prefix "${prefix}" on this prom-client registry. `
      + 'Close the earlier one first (middleware.close() for Express, fastify.close() for Fastify, monitor.close()), '
      + 'or give this one its own "prefix" option, or leave out the "registry" option so that it gets a registry of its own.');
  }
  for (const name of names) {
    if (registry.getSingleMetric(name) !== undefined) {
      throw new Error(`leakwatch: a metric named "${name}" is already registered on this prom-client registry (by your code or another copy of leakwatch). `
        + 'Pass a different "prefix" option (default "leakwatch_"), or leave out the "registry" option so that leakwatch uses a registry of its own.');
    }
  }
  (r[OWNERS] ??= new Map()).set(prefix, monitor);
}

function release(registry: Registry, prefix: string, monitor: LeakMonitor): void {
  const owners = (registry as Owned)[OWNERS];
  if (owners?.get(prefix) === monitor) owners.delete(prefix);
}

/**
 * Installs leakwatch's Prometheus metrics: a registry of its own served at `{path}/metrics`, and the
 * same series registered on the user's `registry` option when given (so the app's own `/metrics`
 * includes them). Values are computed when scraped, from what the recorder, detector and probe keep.
 *
 * Registering a second open instance with the same prefix on the same registry throws a clear
 * error at setup; a closed instance's names are free again (hot reload, tests).
 *
 * @example
 * ```js
 * const client = require('prom-client');
 * app.use(leakwatch({ registry: client.register })); // your /metrics now includes leakwatch_*
 * // or scrape leakwatch's own: GET /__leaks/metrics
 * ```
 */
export function installMetrics(monitor: LeakMonitor): void {
  const { prefix, registry: userRegistry } = monitor.options;
  const names = SERIES.map((d) => prefix + d.name);
  if (userRegistry !== undefined) claim(userRegistry, prefix, names, monitor);

  const routes: Iterable<RouteStats> = { [Symbol.iterator]: () => monitor.recorder.routes.values() };
  const source = (): MetricSource => {
    // Counts of Fastify's counted requests that wait on idle connections (core/counted.ts).
    monitor.recorder.settle();
    return {
      routes,
      routeCount: monitor.recorder.routes.size,
      findings: monitor.processFindings,
      heapLimitBytes: v8.getHeapStatistics().heap_size_limit,
      overflowed: monitor.recorder.overflowed,
      faults: monitor.faults,
      mode: monitor.options.mode,
    };
  };

  const own = new Registry();
  const registered: Array<[Registry, string, RegistrableMetric]> = [];
  const registries = userRegistry === undefined ? [own] : [own, userRegistry];
  try {
    for (const reg of registries) {
      // One metric object per registry: an OpenMetrics registry renames counters in place when it
      // renders them, which must not leak into the other registry's output.
      for (const def of SERIES) {
        const m = build(def, prefix + def.name, source, monitor);
        reg.registerMetric(m as unknown as Parameters<Registry['registerMetric']>[0]);
        registered.push([reg, prefix + def.name, m]);
      }
    }
  } catch (e) {
    for (const [reg, name, m] of registered) if ((reg.getSingleMetric(name) as unknown) === m) reg.removeSingleMetric(name);
    if (userRegistry !== undefined) release(userRegistry, prefix, monitor);
    throw e;
  }

  monitor.router.get('/metrics', async (ctx) => {
    const text = await own.metrics();
    sendText(ctx.res, 200, own.contentType, text);
  });

  let closed = false;
  const feature: MetricsFeature = {
    registry: own,
    userRegistry,
    names,
    close() {
      if (closed) return;
      closed = true;
      for (const [reg, name, m] of registered) if ((reg.getSingleMetric(name) as unknown) === m) reg.removeSingleMetric(name);
      if (userRegistry !== undefined) release(userRegistry, prefix, monitor);
    },
  };
  monitor.features.metrics = feature;
}

function build(def: SeriesDef, name: string, source: () => MetricSource, monitor: LeakMonitor): RegistrableMetric {
  if (def.type === 'histogram') {
    return new PrecountedHistogram(name, def.help, def.aggregator, def.bounds, () => guarded(monitor, () => def.collect(source())));
  }
  const samples = (): ReturnType<ScalarDef['collect']> => guarded(monitor, () => def.collect(source()));
  const config = { name, help: def.help, labelNames: def.labelNames, registers: [] as Registry[], aggregator: def.aggregator };
  if (def.type === 'counter') {
    return new Counter({
      ...config,
      collect(this: Counter) {
        this.reset();
        for (const s of samples()) this.inc(s.labels, s.value);
      },
    }) as unknown as RegistrableMetric;
  }
  return new Gauge({
    ...config,
    collect(this: Gauge) {
      this.reset();
      const list = samples();
      // reset() puts a 0 on a label-less gauge; an unknown value must be absent, not 0.
      if (list.length === 0 && def.labelNames.length === 0) this.remove({});
      for (const s of list) this.set(s.labels, s.value);
    },
  }) as unknown as RegistrableMetric;
}

/** A fault while collecting must not break the user's whole /metrics: log it once, export nothing. */
function guarded<T>(monitor: LeakMonitor, f: () => T[]): T[] {
  try {
    return f();
  } catch (e) {
    monitor.fault(e);
    return [];
  }
}
