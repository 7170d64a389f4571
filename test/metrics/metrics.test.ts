import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import v8 from 'node:v8';
import Fastify from 'fastify';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import { createMonitor, type LeakMonitor } from '../../src/core/monitor';
import { HEAP_DELTA_BOUNDS, SERIES, VERDICTS, type MetricsFeature } from '../../src/core/metrics/index';
import { get, listen, close, postJson } from '../helpers';
import { assertPromtoolClean, parseExposition, pick, value, type PromSample } from './prom';

const quiet = { notice: false, logger: { warn: () => {}, info: () => {} } };
const feature = (m: LeakMonitor) => m.features.metrics as MetricsFeature;

/** The per-route invariants every scrape must satisfy, whatever the detector concluded. */
function assertRouteInvariants(samples: PromSample[], method: string, route: string, requests: number): void {
  const p = 'leakwatch_';
  assert.equal(value(samples, p + 'route_requests_total', { method, route }), requests);
  const states = pick(samples, p + 'route_verdict', { method, route });
  assert.deepEqual(states.map((s) => s.labels.verdict).sort(), [...VERDICTS].sort(), 'all four verdict words');
  assert.equal(states.filter((s) => s.value === 1).length, 1, 'exactly one current verdict');
  assert.equal(states.filter((s) => s.value === 0).length, 3);
  const buckets = pick(samples, p + 'route_heap_delta_bytes_bucket', { method, route });
  assert.deepEqual(buckets.map((b) => b.labels.le), [...HEAP_DELTA_BOUNDS.map(String), '+Inf']);
  for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i].value >= buckets[i - 1].value, 'buckets are cumulative');
  assert.equal(buckets[buckets.length - 1].value, requests, '+Inf bucket counts every request');
  assert.equal(value(samples, p + 'route_heap_delta_bytes_count', { method, route }), requests);
  assert.ok(value(samples, p + 'route_heap_delta_bytes_sum', { method, route }) >= 0, '_sum only adds positive deltas');
}

test('Express: GET {path}/metrics serves lint-clean Prometheus text with per-route series', async (t) => {
  const express = require('express');
  const app = express();
  const mw = leakwatch(quiet);
  app.use(mw);
  app.get('/users/:id', (req: any, res: any) => res.json({ id: req.params.id }));
  app.get('/big', (_req: any, res: any) => res.json({ data: Buffer.alloc(200_000).toString('hex').length }));
  const server = http.createServer(app);
  const port = await listen(server);
  try {
    for (let i = 0; i < 7; i++) assert.equal((await get(port, `/users/${i}`)).status, 200);
    for (let i = 0; i < 3; i++) await get(port, '/big');
    await get(port, '/nowhere/1');
    const r = await get(port, '/__leaks/metrics');
    assert.equal(r.status, 200);
    assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    await assertPromtoolClean(r.body, t);
    const s = parseExposition(r.body);
    assertRouteInvariants(s, 'GET', '/users/:id', 7);
    assertRouteInvariants(s, 'GET', '/big', 3);
    assertRouteInvariants(s, 'GET', '(unmatched)', 1);
    // Route labels are templates: no concrete id ever becomes a label value.
    const routes = new Set(pick(s, 'leakwatch_route_requests_total').map((x) => x.labels.route));
    assert.deepEqual([...routes].sort(), ['(unmatched)', '/big', '/users/:id']);
    // Process series that are always known.
    assert.equal(value(s, 'leakwatch_heap_limit_bytes'), v8.getHeapStatistics().heap_size_limit);
    assert.equal(value(s, 'leakwatch_processes', { mode: mw.monitor.options.mode }), 1);
    assert.equal(value(s, 'leakwatch_routes'), 3);
    // The metrics endpoint is leakwatch's own path: scraping is not recorded as a route.
    const again = parseExposition((await get(port, '/__leaks/metrics')).body);
    assert.equal(pick(again, 'leakwatch_route_requests_total').reduce((a, x) => a + x.value, 0), 11);
    // HEAD works too, and other methods get a 405 with Allow.
    const post = await new Promise<number>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'DELETE', path: '/__leaks/metrics', agent: false }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
      req.on('error', reject);
      req.end();
    });
    assert.equal(post, 405);
  } finally {
    mw.close();
    await close(server);
  }
});

test('Fastify: GET {path}/metrics with route templates, lint-clean', async (t) => {
  const app = Fastify();
  await app.register(fastifyLeakwatch, quiet);
  app.get('/items/:id', async (req: any) => ({ id: req.params.id }));
  app.post('/items', async () => ({ ok: true }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  try {
    for (let i = 0; i < 5; i++) await get(port, `/items/${i}`);
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/items', agent: false, headers: { 'content-type': 'application/json' } }, (res) => { res.resume(); res.on('end', resolve); });
      req.on('error', reject);
      req.end('{}');
    });
    const r = await get(port, '/__leaks/metrics');
    assert.equal(r.status, 200);
    assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    await assertPromtoolClean(r.body, t);
    const s = parseExposition(r.body);
    assertRouteInvariants(s, 'GET', '/items/:id', 5);
    assertRouteInvariants(s, 'POST', '/items', 1);
  } finally {
    await app.close();
  }
  // close() took leakwatch's series off its registry.
  assert.equal(feature(app.leakwatch).registry.getMetricsAsArray().length, 0);
});

test('estimates, findings and probe reports appear with their values; unknown ones are absent, never NaN or 0', async (t) => {
  const monitor = createMonitor({ ...quiet, checkpointIntervalMs: 3_600_000 });
  try {
    const s = monitor.recorder.routeFor('GET', '/leak/:n');
    const plain = monitor.recorder.routeFor('GET', '/plain');
    s.requests = 40; plain.requests = 3;
    // The detector and the probe own these fields; here they are written by hand, then scraped
    // synchronously (prom-client runs every collect() before its first await).
    Object.assign(monitor.processFindings, {
      liveHeapBytes: null, liveExternalBytes: null, liveAt: null, heapGrowthBytesPerSecond: null,
      externalGrowthBytesPerSecond: null, rssGrowthBytesPerSecond: null, secondsToHeapLimit: null, nativeGrowth: false,
    });
    s.estimate = undefined; plain.estimate = undefined; s.probe = undefined; plain.probe = undefined;
    s.verdict = 'warming-up'; plain.verdict = 'warming-up';
    const before = await feature(monitor).registry.metrics();
    await assertPromtoolClean(before, t);
    assert.doesNotMatch(before, /NaN|Nan|Inf(?!")/i, 'no NaN or infinite values');
    const b = parseExposition(before);
    for (const absent of ['route_retained_bytes_per_request', 'route_retained_bytes_per_request_low', 'route_retained_bytes_per_request_high',
      'route_external_bytes_per_request', 'route_probe_retained_bytes_per_iteration', 'route_probe_iterations', 'route_probe_leaking',
      'heap_live_bytes', 'heap_live_timestamp_seconds', 'heap_growth_bytes_per_second', 'heap_seconds_to_limit', 'external_live_bytes',
      'external_growth_bytes_per_second', 'rss_growth_bytes_per_second']) {
      assert.equal(pick(b, 'leakwatch_' + absent).length, 0, `${absent} must be absent while unknown`);
    }
    assert.equal(value(b, 'leakwatch_native_growth'), 0);

    s.estimate = { bytesPerRequest: 1050, low: 980, high: 1120, externalBytesPerRequest: 4096, basis: { method: 'regression', checkpoints: 12, samples: 40 } };
    s.verdict = 'leaking';
    s.probe = { verdict: 'leaking', retainedBytesPerIteration: 1043, iterations: 30, newObjects: [], newGlobals: [] };
    plain.probe = { verdict: 'stable', retainedBytesPerIteration: 0, iterations: 30 };
    Object.assign(monitor.processFindings, {
      liveHeapBytes: 52_000_000, liveExternalBytes: 1_500_000, liveAt: 1_790_000_000_000, heapGrowthBytesPerSecond: 2048,
      externalGrowthBytesPerSecond: 0, rssGrowthBytesPerSecond: 4096, secondsToHeapLimit: 7200, nativeGrowth: true, checkpoints: 12,
    });
    const after = await feature(monitor).registry.metrics();
    await assertPromtoolClean(after, t);
    const a = parseExposition(after);
    const leak = { method: 'GET', route: '/leak/:n' };
    assert.equal(value(a, 'leakwatch_route_retained_bytes_per_request', leak), 1050);
    assert.equal(value(a, 'leakwatch_route_retained_bytes_per_request_low', leak), 980);
    assert.equal(value(a, 'leakwatch_route_retained_bytes_per_request_high', leak), 1120);
    assert.equal(value(a, 'leakwatch_route_external_bytes_per_request', leak), 4096);
    assert.equal(pick(a, 'leakwatch_route_retained_bytes_per_request', { route: '/plain' }).length, 0, 'no estimate, no series');
    assert.equal(value(a, 'leakwatch_route_verdict', { ...leak, verdict: 'leaking' }), 1);
    assert.equal(value(a, 'leakwatch_route_verdict', { ...leak, verdict: 'warming-up' }), 0);
    assert.equal(value(a, 'leakwatch_route_probe_retained_bytes_per_iteration', leak), 1043);
    assert.equal(value(a, 'leakwatch_route_probe_iterations', leak), 30);
    assert.equal(value(a, 'leakwatch_route_probe_leaking', leak), 1);
    assert.equal(value(a, 'leakwatch_route_probe_leaking', { route: '/plain' }), 0);
    assert.equal(value(a, 'leakwatch_heap_live_bytes'), 52_000_000);
    assert.equal(value(a, 'leakwatch_heap_live_timestamp_seconds'), 1_790_000_000);
    assert.equal(value(a, 'leakwatch_external_live_bytes'), 1_500_000);
    assert.equal(value(a, 'leakwatch_heap_growth_bytes_per_second'), 2048);
    assert.equal(value(a, 'leakwatch_external_growth_bytes_per_second'), 0);
    assert.equal(value(a, 'leakwatch_rss_growth_bytes_per_second'), 4096);
    assert.equal(value(a, 'leakwatch_heap_seconds_to_limit'), 7200);
    assert.equal(value(a, 'leakwatch_native_growth'), 1);
    assert.equal(value(a, 'leakwatch_checkpoints_total'), 12);

    // A probe report of some other shape is ignored rather than exported as garbage.
    s.probe = { verdict: 'maybe', retainedBytesPerIteration: 'lots' };
    const odd = parseExposition(await feature(monitor).registry.metrics());
    assert.equal(pick(odd, 'leakwatch_route_probe_retained_bytes_per_iteration', leak).length, 0);
    assert.equal(pick(odd, 'leakwatch_route_probe_leaking', leak).length, 0);
  } finally {
    monitor.close();
  }
});

test('hostile route labels are escaped by prom-client and the route table bounds the series', async (t) => {
  const monitor = createMonitor({ ...quiet, maxRoutes: 3 });
  const server = http.createServer((req, res) => {
    if (monitor.isOwnPath(req.url)) { void monitor.handle(req, res); return; }
    const state = monitor.start();
    // A plain-http integration names its own routes; these are as hostile as names get.
    const route = decodeURIComponent((req.url ?? '/').slice(1));
    res.on('finish', () => monitor.finish(state, req.method ?? 'GET', route, res.statusCode, false));
    res.end('ok');
  });
  const port = await listen(server);
  try {
    const hostile = '/say/"hi"\\ {x="1"}\nnext';
    await get(port, '/' + encodeURIComponent(hostile));
    for (let i = 0; i < 50; i++) await get(port, `/r${i}`);
    const r = await get(port, '/__leaks/metrics');
    await assertPromtoolClean(r.body, t);
    const s = parseExposition(r.body);
    const requests = pick(s, 'leakwatch_route_requests_total');
    assert.equal(value(s, 'leakwatch_route_requests_total', { route: hostile }), 1, 'the hostile name round-trips exactly');
    assert.ok(requests.length <= 4, `at most maxRoutes plus one overflow bucket; got ${requests.length}`);
    assert.equal(requests.reduce((a, x) => a + x.value, 0), 51);
    assert.equal(value(s, 'leakwatch_route_overflow_requests_total'), 48);
    assert.equal(value(s, 'leakwatch_route_requests_total', { route: '(other)' }), 48);
    // 13 histogram series + 4 verdicts + 1 counter per route key, however many URLs arrive.
    assert.ok(s.length < 4 * 20 + 20, `series stay bounded; got ${s.length}`);
  } finally {
    monitor.close();
    await close(server);
  }
});

test('every series declares a help text, a type and one of the cluster aggregators', () => {
  const names = new Set<string>();
  for (const d of SERIES) {
    assert.match(d.name, /^[a-z_]+$/);
    assert.ok(!names.has(d.name), `duplicate ${d.name}`);
    names.add(d.name);
    assert.ok(d.help.length > 10);
    assert.ok(['sum', 'average', 'min', 'max'].includes(d.aggregator));
    assert.equal(d.type === 'counter', d.name.endsWith('_total'), `${d.name}: counters, and only counters, end in _total`);
  }
  for (const required of ['route_requests_total', 'route_retained_bytes_per_request', 'route_verdict', 'heap_live_bytes', 'heap_growth_bytes_per_second']) {
    assert.ok(names.has(required), required);
  }
});

test('a real isolation probe shows up in the metrics: probe bytes, leaking flag and the leaking verdict', async (t) => {
  const express = require('express');
  const { randomBytes } = require('node:crypto');
  const app = express();
  const mw = leakwatch({ ...quiet, autoProbe: false });
  app.use(mw);
  const kept: string[] = [];
  // 4 KB of flat string kept per request (randomBytes hex is flat, unlike 'x'.repeat()).
  app.get('/leak/:id', (_req: any, res: any) => { kept.push(randomBytes(2048).toString('hex')); res.send('ok'); });
  app.get('/fine/:id', (_req: any, res: any) => { res.send(randomBytes(2048).toString('hex').slice(0, 8)); });
  const server = http.createServer(app);
  const port = await listen(server);
  try {
    await get(port, '/leak/1');
    await get(port, '/fine/1');
    for (const route of ['/leak/:id', '/fine/:id']) {
      const r = await postJson(port, '/__leaks/api/probe', { method: 'GET', route, iterations: 8, warmup: 1, objects: false, thresholdBytes: 1024 });
      assert.equal(r.status, 200, r.body);
    }
    const s = parseExposition((await get(port, '/__leaks/metrics')).body);
    const leak = { method: 'GET', route: '/leak/:id' };
    const fine = { method: 'GET', route: '/fine/:id' };
    t.diagnostic(`probe bytes/iteration: leak ${value(s, 'leakwatch_route_probe_retained_bytes_per_iteration', leak)}, fine ${value(s, 'leakwatch_route_probe_retained_bytes_per_iteration', fine)}`);
    assert.equal(value(s, 'leakwatch_route_probe_leaking', leak), 1);
    assert.equal(value(s, 'leakwatch_route_probe_leaking', fine), 0);
    assert.equal(value(s, 'leakwatch_route_probe_iterations', leak), 8);
    // 4,096 characters plus a string header: well above 2 KB, well below 8 KB.
    const bytes = value(s, 'leakwatch_route_probe_retained_bytes_per_iteration', leak);
    assert.ok(bytes > 2048 && bytes < 8192, `leak probe read ${bytes} B/iteration`);
    assert.equal(value(s, 'leakwatch_route_verdict', { ...leak, verdict: 'leaking' }), 1, 'a leaking probe sets the verdict');
  } finally {
    mw.close();
    await close(server);
  }
});
