import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatBytes, formatCount, projectionText } from '../../src/core/dashboard/format';
import { lineChart, sparkline, escapeXml } from '../../src/core/dashboard/charts';
import { redactHeaders, redactUrl, REDACTED } from '../../src/core/dashboard/redact';
import { probeView, probeProgress } from '../../src/core/dashboard/probeview';
import { ruledOut, routeProjection, findingLines } from '../../src/core/dashboard/model';
import { snapshotPreflight } from '../../src/core/status/snapshot';
import { packageOf } from '../../src/core/status/modules';
import type { RouteSummary } from '../../src/core/summary';

test('bytes, counts and the seed\'s projection arithmetic', () => {
  assert.equal(formatBytes(0), '0 B');
  assert.equal(formatBytes(999), '999 B');
  assert.equal(formatBytes(5000), '5.00 KB');
  assert.equal(formatBytes(-2048), '−2.05 KB');
  assert.equal(formatBytes(123_456_789), '123 MB');
  assert.equal(formatBytes(null), '–');
  assert.equal(formatCount(1234567), '1,234,567');
  // "If the code leaks 5 KB per request, then after 1,000 requests … 5 MB … 20 processes … 100 MB"
  assert.equal(projectionText(5000, 20), '5.00 KB/request → 5.00 MB after 1,000 requests; 100 MB across 20 workers');
  assert.equal(projectionText(5000, 1), '5.00 KB/request → 5.00 MB after 1,000 requests');
  assert.equal(projectionText(0, 4), null);
  assert.equal(projectionText(null, 4), null);
});

test('charts escape every text they place and draw one mark per point', () => {
  const evil = '</title><script>alert(1)</script>';
  const svg = lineChart([{ x: 0, y: 1 }, { x: 1, y: 3 }, { x: 2, y: 2 }], { title: evil, markers: [{ x: 1, kind: 'mark-forced', label: evil }], dots: true });
  assert.ok(!svg.includes('<script>'));
  assert.ok(svg.includes(escapeXml(evil)));
  assert.equal((svg.match(/<circle /g) ?? []).length, 3);
  assert.equal((svg.match(/class="mark mark-forced"/g) ?? []).length, 1);
  assert.ok(!/style=/.test(svg), 'no inline styles: the CSP forbids them');
  assert.match(lineChart([], { title: 't' }), /no data yet/);
  const spark = sparkline([100, -50, 200], evil);
  assert.equal((spark.match(/<rect /g) ?? []).length, 3);
  assert.equal((spark.match(/class="bar neg"/g) ?? []).length, 1);
  assert.ok(!spark.includes('<script>'));
});

test('credential headers and query parameters are redacted for display', () => {
  const rows = new Map(redactHeaders({
    authorization: 'Bearer s3cret', cookie: 'sid=abc', 'set-cookie': ['a=1'], 'proxy-authorization': 'Basic x',
    'x-api-key': 'k', 'x-auth-token': 't', 'x-session-id': 's', accept: 'text/html', 'user-agent': 'ua', 'keep-alive': 'timeout=5',
  }));
  for (const h of ['authorization', 'cookie', 'set-cookie', 'proxy-authorization', 'x-api-key', 'x-auth-token', 'x-session-id']) {
    assert.equal(rows.get(h), REDACTED, h);
  }
  assert.equal(rows.get('accept'), 'text/html');
  assert.equal(rows.get('user-agent'), 'ua');
  assert.equal(rows.get('keep-alive'), 'timeout=5');
  assert.equal(redactUrl('/a?token=abc&x=1&api_key=k&password=p'), `/a?token=${REDACTED}&x=1&api_key=${REDACTED}&password=${REDACTED}`);
  assert.equal(redactUrl('/plain/path'), '/plain/path');
});

test('a heap snapshot is refused when free memory is short, allowed when it is ample', () => {
  const small = snapshotPreflight(50e6, 300e6);
  assert.equal(small.ok, false);
  assert.match(small.reason, /not enough free memory/);
  assert.ok(small.needed > 50e6 * 10);
  assert.equal(snapshotPreflight(50e6, 20e9).ok, true);
});

test('probe reports are read tolerantly; unknown fields are kept visible', () => {
  const v = probeView({
    verdict: 'leaking', iterations: 30, retainedBytesPerIteration: 2100,
    newObjects: [{ constructor: 'Timeout', countPerIteration: 1, bytesPerIteration: 160, retainerPath: ['(global)', 'timers (Map)', 'Timeout'] }],
    newGlobals: ['FooB', 'FooC'], scopeDiff: '--- before\n+++ after\n@@ -1 +1 @@\n-a\n+b\n ctx',
    bytesPerIterationSeries: [2000, 2100, 2200], resources: { before: { Timeout: 1 }, after: { Timeout: 31 } }, phaseTimings: { x: 1 },
  });
  assert.ok(v);
  assert.equal(v.verdict, 'leaking');
  assert.equal(v.newObjects[0].constructor, 'Timeout');
  assert.equal(v.newObjects[0].retainerPath, '(global) → timers (Map) → Timeout');
  assert.deepEqual(v.scopeDiff.map((l) => l.kind), ['head', 'head', 'hunk', 'del', 'add', 'ctx']);
  assert.deepEqual(v.resources, [{ type: 'Timeout', before: '1', after: '31' }]);
  assert.match(v.chart ?? '', /<rect /);
  assert.match(v.extra ?? '', /phaseTimings/);
  // An object without a "constructor" key must not print "function Object()".
  assert.equal(probeView({ newObjects: [{ name: 'Foo' }] })?.newObjects[0].constructor, 'Foo');
  assert.equal(probeView(null), null);
  // A periodic leak's probe measures five whole periods: both counts and the period are shown.
  const p = probeView({ verdict: 'leaking', iterations: 30, measuredIterations: 50, period: 10, retainedBytesPerIteration: 1026 })!;
  assert.deepEqual([p.iterations, p.measuredIterations, p.period, p.extra], [30, 50, 10, null]);
  assert.equal(probeView({ verdict: 'stable', iterations: 30, measuredIterations: 30, period: 0 })!.period, null);
  assert.deepEqual(probeProgress({ running: true, done: 3, total: 30, phase: 'measuring' }), { running: true, done: 3, total: 30, phase: 'measuring', method: null, route: null, error: null });
});

function summary(p: Partial<RouteSummary>): RouteSummary {
  return {
    key: 'GET /x', method: 'GET', route: '/x', requests: 100, verdict: 'warming-up', verdictReason: '', retainedBytesPerRequest: null,
    retainedBytesPerRequestLow: null, retainedBytesPerRequestHigh: null, externalBytesPerRequest: null, basis: null,
    garbageBytesPerRequest: 0, externalDeltaPerRequest: 0, meanDurationMs: 1, meanConcurrency: 1, timedRequests: 100, gcShare: 0, serverErrors: 0,
    aborted: 0, resourceDeltaPerSampledRequest: {}, globalsAdded: [], findings: {}, firstSeenMs: 0, lastSeenMs: 0, ...p,
  };
}

test('projection and "ruled out" lines say only what the findings support', () => {
  const growing = summary({ verdict: 'growing', retainedBytesPerRequest: 5000, basis: { method: 'regression', checkpoints: 12, samples: 0 }, findings: { dataDependent: false } });
  assert.equal(routeProjection(growing, 20), '5.00 KB/request → 5.00 MB after 1,000 requests; 100 MB across 20 workers');
  assert.deepEqual(ruledOut(growing), ['warm-up: still growing after 12 checkpoints', 'data-dependent growth: the heap never fell back']);
  // The detector's own text wins when it gives one.
  assert.equal(routeProjection(summary({ verdict: 'growing', findings: { projection: { text: 'from the detector' } } }), 4), 'from the detector');
  assert.deepEqual(ruledOut(summary({ findings: { ruledOut: ['warm-up', 'noise'] } })), ['warm-up', 'noise']);
  // A stable route gets no projection even with a small positive estimate.
  assert.equal(routeProjection(summary({ verdict: 'stable', retainedBytesPerRequest: 3 }), 4), null);
  assert.deepEqual(ruledOut(summary({ verdict: 'warming-up' })), []);
  assert.deepEqual(ruledOut(summary({ verdict: 'stable', basis: { method: 'x', checkpoints: 9, samples: 0 } })), []);
  assert.deepEqual(ruledOut(summary({ verdict: 'stable', findings: { dataDependent: true } })), ['a leak: growth follows the data, it rises and falls']);
  assert.deepEqual(findingLines(summary({ findings: { nativeGrowth: { externalBytesPerRequest: 4096 }, objectGrowth: { type: 'globals', perRequest: 1 } } })),
    ['External (Buffer/native) memory grows 4.10 KB per request, outside the JS heap', 'globals count grows 1.00 per request']);
});

test('modules are grouped by package, scoped names included', () => {
  assert.equal(packageOf('/srv/app/node_modules/@fastify/ajv/lib/x.js'), '@fastify/ajv');
  assert.equal(packageOf('/srv/app/node_modules/a/node_modules/b/index.js'), 'b');
  assert.equal(packageOf('file:///srv/app/node_modules/esm-pkg/index.mjs'), 'esm-pkg');
  assert.equal(packageOf('/srv/app/server.js'), '(app)');
});
