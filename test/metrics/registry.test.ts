import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import Fastify from 'fastify';
import { AggregatorRegistry, Counter, Registry } from 'prom-client';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import { createMonitor, type LeakMonitor } from '../../src/core/monitor';
import { SERIES, type MetricsFeature } from '../../src/core/metrics/index';
import { gcWatch } from '../../src/core/gcwatch';
import { get, listen, close } from '../helpers';
import { assertPromtoolClean, parseExposition, pick, value } from './prom';

const quiet = { notice: false, logger: { warn: () => {}, info: () => {} } };
const feature = (m: LeakMonitor) => m.features.metrics as MetricsFeature;

test('a custom registry: the app\'s own /metrics carries leakwatch_* next to its metrics; {path}/metrics only leakwatch\'s; close() removes ours only', async (t) => {
  const express = require('express');
  const registry = new Registry();
  const hits = new Counter({ name: 'app_hits_total', help: 'Hits counted by the app itself.', labelNames: ['page'], registers: [registry] });
  const app = express();
  const mw = leakwatch({ ...quiet, registry });
  app.use(mw);
  app.get('/page/:name', (req: any, res: any) => { hits.inc({ page: req.params.name }); res.send('ok'); });
  app.get('/metrics', async (_req: any, res: any) => { res.set('content-type', registry.contentType); res.send(await registry.metrics()); });
  const server = http.createServer(app);
  const port = await listen(server);
  try {
    for (let i = 0; i < 4; i++) await get(port, '/page/home');
    const theirs = await get(port, '/metrics');
    await assertPromtoolClean(theirs.body, t);
    const s = parseExposition(theirs.body);
    assert.equal(value(s, 'app_hits_total', { page: 'home' }), 4);
    // The app's own /metrics is a route of the app too, recorded once its response is done.
    assert.equal(value(s, 'leakwatch_route_requests_total', { route: '/page/:name' }), 4);
    const ours = parseExposition((await get(port, '/__leaks/metrics')).body);
    assert.equal(pick(ours, 'app_hits_total').length, 0, '{path}/metrics holds leakwatch series only (no double scrape of the app\'s)');
    assert.equal(value(ours, 'leakwatch_route_requests_total', { route: '/metrics' }), 1);
    assert.equal(feature(mw.monitor).userRegistry, registry);
  } finally {
    mw.close();
    await close(server);
  }
  const left = registry.getMetricsAsArray().map((m) => m.name);
  assert.deepEqual(left, ['app_hits_total'], 'close() unregisters every leakwatch metric and nothing else');
  // The freed names are reusable: a hot-reloaded app registers again on the same registry.
  const again = leakwatch({ ...quiet, registry });
  try {
    assert.ok(registry.getSingleMetric('leakwatch_route_requests_total'));
  } finally {
    again.close();
  }
});

test('the prefix option renames every series', async (t) => {
  const registry = new Registry();
  const m = createMonitor({ ...quiet, registry, prefix: 'shop_lw_' });
  try {
    m.recorder.routeFor('GET', '/x').requests = 2;
    const text = await registry.metrics();
    await assertPromtoolClean(text, t);
    const names = new Set(parseExposition(text).map((x) => x.name.replace(/_(bucket|sum|count)$/, '')));
    for (const n of names) assert.ok(n.startsWith('shop_lw_'), n);
    assert.equal(value(parseExposition(text), 'shop_lw_route_requests_total', { route: '/x' }), 2);
    assert.deepEqual(feature(m).names, SERIES.map((d) => 'shop_lw_' + d.name));
  } finally {
    m.close();
  }
});

test('two Express apps in one process, each on a registry of its own: independent counts, no crash', async () => {
  const express = require('express');
  const servers: http.Server[] = [];
  const mws = [leakwatch(quiet), leakwatch(quiet)];
  try {
    const ports: number[] = [];
    for (const mw of mws) {
      const app = express();
      app.use(mw);
      app.get('/same/:id', (_req: any, res: any) => res.send('x'));
      const server = http.createServer(app);
      servers.push(server);
      ports.push(await listen(server));
    }
    for (let i = 0; i < 3; i++) await get(ports[0], `/same/${i}`);
    for (let i = 0; i < 5; i++) await get(ports[1], `/same/${i}`);
    const a = parseExposition((await get(ports[0], '/__leaks/metrics')).body);
    const b = parseExposition((await get(ports[1], '/__leaks/metrics')).body);
    assert.equal(value(a, 'leakwatch_route_requests_total', { route: '/same/:id' }), 3);
    assert.equal(value(b, 'leakwatch_route_requests_total', { route: '/same/:id' }), 5);
  } finally {
    for (const mw of mws) mw.close();
    for (const s of servers) await close(s);
  }
});

test('two open instances on one registry with one prefix: a clear error, not prom-client\'s bare "already registered"; another prefix works', async (t) => {
  const registry = new Registry();
  const first = leakwatch({ ...quiet, registry });
  let third: ReturnType<typeof leakwatch> | undefined;
  try {
    assert.throws(() => leakwatch({ ...quiet, registry }), (e: Error) => {
      assert.match(e.message, /^leakwatch: another leakwatch instance that is still open already exports metrics with prefix "leakwatch_"/);
      assert.match(e.message, /close\(\)/);
      assert.match(e.message, /"prefix" option/);
      assert.doesNotMatch(e.message, /has already been registered/);
      return true;
    });
    // The failed attempt left the first instance's series untouched.
    assert.equal(registry.getMetricsAsArray().length, SERIES.length);
    third = leakwatch({ ...quiet, registry, prefix: 'second_' });
    first.monitor.recorder.routeFor('GET', '/a').requests = 1;
    third.monitor.recorder.routeFor('GET', '/b').requests = 2;
    const text = await registry.metrics();
    await assertPromtoolClean(text, t);
    const s = parseExposition(text);
    assert.equal(value(s, 'leakwatch_route_requests_total', { route: '/a' }), 1);
    assert.equal(value(s, 'second_route_requests_total', { route: '/b' }), 2);
  } finally {
    first.close();
    third?.close();
  }
  assert.equal(registry.getMetricsAsArray().length, 0);
});

test('a name the app already uses on its registry: a clear error naming it', () => {
  const registry = new Registry();
  new Counter({ name: 'leakwatch_faults_total', help: 'The app\'s own metric that happens to share the name.', registers: [registry] });
  const users = (gcWatch as unknown as { users: number }).users;
  assert.throws(() => createMonitor({ ...quiet, registry }), /^Error: leakwatch: a metric named "leakwatch_faults_total" is already registered on this prom-client registry/);
  assert.equal((gcWatch as unknown as { users: number }).users, users, 'the failed monitor released what it had acquired');
  // Nothing of the failed instance stays behind, and the app's metric is intact.
  assert.deepEqual(registry.getMetricsAsArray().map((m) => m.name), ['leakwatch_faults_total']);
  const ok = createMonitor({ ...quiet, registry, prefix: 'lw_' });
  ok.close();
});

test('Fastify: two apps on one registry fail at register with the clear error; the first keeps serving', async () => {
  const registry = new Registry();
  const a = Fastify();
  await a.register(fastifyLeakwatch, { ...quiet, registry });
  const b = Fastify();
  try {
    await assert.rejects(async () => { await b.register(fastifyLeakwatch, { ...quiet, registry }); await b.ready(); },
      /leakwatch: another leakwatch instance that is still open already exports metrics/);
    a.get('/ok', async () => 'ok');
    await a.listen({ port: 0, host: '127.0.0.1' });
    const port = (a.server.address() as { port: number }).port;
    await get(port, '/ok');
    const s = parseExposition((await get(port, '/__leaks/metrics')).body);
    assert.equal(value(s, 'leakwatch_route_requests_total', { route: '/ok' }), 1);
  } finally {
    await a.close();
    await b.close().catch(() => {});
  }
  // After fastify.close(), a new app may take the names (restart in tests, hot reload).
  const c = Fastify();
  await c.register(fastifyLeakwatch, { ...quiet, registry });
  await c.ready();
  await c.close();
});

test('an OpenMetrics registry renders our counter once with _total, without renaming {path}/metrics\' copy', async () => {
  const registry = new Registry();
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE as any);
  const m = createMonitor({ ...quiet, registry });
  try {
    m.recorder.routeFor('GET', '/x').requests = 3;
    const om = await registry.metrics();
    assert.match(om, /^leakwatch_route_requests_total\{method="GET",route="\/x"\} 3$/m);
    assert.doesNotMatch(om, /_total_total/);
    assert.match(om, /# EOF\n$/);
    const own = await feature(m).registry.metrics();
    assert.match(own, /^leakwatch_route_requests_total\{method="GET",route="\/x"\} 3$/m);
    assert.match(own, /^# TYPE leakwatch_route_requests_total counter$/m);
  } finally {
    m.close();
  }
});

test('cluster aggregation: each series combines across workers by its declared aggregator (sum, average, min, max)', async () => {
  // Two monitors stand in for two workers; prom-client's AggregatorRegistry.aggregate() is exactly
  // what the primary runs on the workers' getMetricsAsJSON() replies.
  const w = [createMonitor(quiet), createMonitor(quiet)];
  try {
    const facts = [
      { requests: 30, est: { bytesPerRequest: 1000, low: 900, high: 1100, externalBytesPerRequest: 0 }, verdict: 'growing', live: 40e6, grow: 100, ttl: 9000, probe: 1200 },
      { requests: 10, est: { bytesPerRequest: 2000, low: 1500, high: 2600, externalBytesPerRequest: 64 }, verdict: 'leaking', live: 60e6, grow: 300, ttl: 3000, probe: 900 },
    ] as const;
    w.forEach((m, i) => {
      const f = facts[i];
      const s = m.recorder.routeFor('GET', '/r');
      s.requests = f.requests;
      for (let k = 0; k < f.requests; k++) s.heapDeltaHistogram.observe(5000 * (i + 1));
      s.estimate = { ...f.est, basis: { method: 'test', checkpoints: 1, samples: 1 } };
      s.verdict = f.verdict;
      s.probe = { verdict: 'leaking', retainedBytesPerIteration: f.probe, iterations: 30 };
      Object.assign(m.processFindings, { liveHeapBytes: f.live, heapGrowthBytesPerSecond: f.grow, secondsToHeapLimit: f.ttl, liveAt: 1_000_000 * (i + 1), nativeGrowth: i === 1, checkpoints: 5 });
    });
    const json = await Promise.all(w.map((m) => feature(m).registry.getMetricsAsJSON()));
    const agg = parseExposition(await AggregatorRegistry.aggregate(json as any).metrics());
    const r = { method: 'GET', route: '/r' };
    assert.equal(value(agg, 'leakwatch_route_requests_total', r), 40, 'sum');
    assert.equal(value(agg, 'leakwatch_route_retained_bytes_per_request', r), 1500, 'average');
    assert.equal(value(agg, 'leakwatch_route_retained_bytes_per_request_low', r), 900, 'min');
    assert.equal(value(agg, 'leakwatch_route_retained_bytes_per_request_high', r), 2600, 'max');
    assert.equal(value(agg, 'leakwatch_route_external_bytes_per_request', r), 32, 'average');
    assert.equal(value(agg, 'leakwatch_route_verdict', { ...r, verdict: 'growing' }), 1, 'workers holding the verdict');
    assert.equal(value(agg, 'leakwatch_route_verdict', { ...r, verdict: 'leaking' }), 1);
    assert.equal(value(agg, 'leakwatch_route_verdict', { ...r, verdict: 'stable' }), 0);
    assert.equal(value(agg, 'leakwatch_route_heap_delta_bytes_count', r), 40);
    assert.equal(value(agg, 'leakwatch_route_heap_delta_bytes_sum', r), 30 * 5000 + 10 * 10000);
    assert.equal(value(agg, 'leakwatch_route_heap_delta_bytes_bucket', { ...r, le: '16384' }), 40);
    assert.equal(value(agg, 'leakwatch_route_heap_delta_bytes_bucket', { ...r, le: '4096' }), 0);
    assert.equal(value(agg, 'leakwatch_route_probe_retained_bytes_per_iteration', r), 1200, 'max');
    assert.equal(value(agg, 'leakwatch_route_probe_leaking', r), 2, 'sum');
    assert.equal(value(agg, 'leakwatch_processes', { mode: w[0].options.mode }), 2);
    assert.equal(value(agg, 'leakwatch_heap_live_bytes'), 100e6, 'sum');
    assert.equal(value(agg, 'leakwatch_heap_growth_bytes_per_second'), 400, 'sum');
    assert.equal(value(agg, 'leakwatch_heap_seconds_to_limit'), 3000, 'min: the first to run out');
    assert.equal(value(agg, 'leakwatch_heap_live_timestamp_seconds'), 1000, 'min: the stalest');
    assert.equal(value(agg, 'leakwatch_native_growth'), 1, 'workers with native growth');
    assert.equal(value(agg, 'leakwatch_checkpoints_total'), 10);
    assert.equal(value(agg, 'leakwatch_routes'), 1, 'max');
    // Every declared aggregator is the one prom-client sees.
    for (const m of json[0] as Array<{ name: string; aggregator: string }>) {
      const def = SERIES.find((d) => 'leakwatch_' + d.name === m.name);
      assert.ok(def, m.name);
      assert.equal(m.aggregator, def.aggregator, m.name);
    }
  } finally {
    for (const m of w) m.close();
  }
});
