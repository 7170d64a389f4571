import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../helpers';
import { SERIES } from '../../src/core/metrics/index';
import { hasPromtool, NO_PROMTOOL, promtool } from './prom';

const dir = path.join(repoRoot, 'examples', 'prometheus');
const RULES = 'leakwatch.rules.yml';
const UNIT = 'leakwatch.rules.test.yml';

/** Every exported sample name, histogram parts included. */
function exportedNames(prefix = 'leakwatch_'): Set<string> {
  const names = new Set<string>();
  for (const d of SERIES) {
    if (d.type === 'histogram') for (const part of ['_bucket', '_sum', '_count']) names.add(prefix + d.name + part);
    else names.add(prefix + d.name);
  }
  return names;
}

/** leakwatch_* metric names a PromQL expression reads. */
function namesIn(expr: string): string[] {
  return [...expr.matchAll(/\bleakwatch_[a-z_]+/g)].map((m) => m[0]);
}

test('promtool check rules and check config accept the example files', async (t) => {
  if (!hasPromtool()) { t.skip(NO_PROMTOOL); return; }
  const rules = await promtool(['check', 'rules', RULES], undefined, dir);
  assert.equal(rules.code, 0, rules.output);
  assert.match(rules.output, /SUCCESS: 7 rules found/);
  const config = await promtool(['check', 'config', 'prometheus.yml'], undefined, dir);
  assert.equal(config.code, 0, config.output);
  assert.match(config.output, /SUCCESS: prometheus\.yml is valid/);
});

test('promtool test rules: the alerts fire on a leak and stay quiet on plateaus, warm-up and idle routes', async (t) => {
  if (!hasPromtool()) { t.skip(NO_PROMTOOL); return; }
  const r = await promtool(['test', 'rules', UNIT], undefined, dir);
  assert.equal(r.code, 0, r.output);
  assert.match(r.output, /SUCCESS/);
});

test('the unit tests discriminate: naive variants of the rules fail them (warm-up and idle routes would alert)', async (t) => {
  if (!hasPromtool()) { t.skip(NO_PROMTOOL); return; }
  const rules = fs.readFileSync(path.join(dir, RULES), 'utf8');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'leakwatch-rules-'));
  try {
    fs.copyFileSync(path.join(dir, UNIT), path.join(tmp, UNIT));
    const variants: Array<[string, string, RegExp]> = [
      // Only the 1-hour trend: the warm-up ramp of warm:3000 alerts.
      ['1h trend only', rules.replace(/\n\s*and predict_linear\(leakwatch_heap_live_bytes\[15m\][^\n]*/, ''), /instance="warm:3000"/],
      // No traffic condition: the idle route alerts.
      ['no traffic condition', rules.replace(/\n\s*and rate\(leakwatch_route_requests_total\[5m\]\) > 0/, ''), /route="\/idle"/],
      // The point estimate's "for" cut to 5 minutes: the warm-up route /lazy alerts.
      ['for: 5m', rules.replace(/(LeakwatchRouteRetainingMemory[\s\S]*?for: )15m/, '$15m'), /route="\/lazy"/],
    ];
    for (const [name, text, culprit] of variants) {
      assert.notEqual(text, rules, `variant "${name}" must change the rules`);
      fs.writeFileSync(path.join(tmp, RULES), text);
      const r = await promtool(['test', 'rules', UNIT], undefined, tmp);
      assert.notEqual(r.code, 0, `variant "${name}" should fail the unit tests`);
      assert.match(r.output, culprit, `variant "${name}" should fail because of ${culprit}`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('the rules read only series leakwatch exports', () => {
  const exported = exportedNames();
  const rules = fs.readFileSync(path.join(dir, RULES), 'utf8');
  const used = namesIn(rules);
  assert.ok(used.length >= 6);
  for (const n of used) assert.ok(exported.has(n), `${RULES} uses ${n}, which leakwatch does not export`);
});

test('Grafana dashboard: valid JSON, every query parses in promtool and reads only exported series', async (t) => {
  const dash = JSON.parse(fs.readFileSync(path.join(dir, 'grafana-dashboard.json'), 'utf8'));
  assert.equal(typeof dash.title, 'string');
  const exprs: string[] = [];
  for (const p of dash.panels) for (const target of p.targets ?? []) exprs.push(target.expr);
  for (const v of dash.templating.list) if (v.type === 'query') exprs.push(String(v.definition).replace(/^label_values\((.*), \w+\)$/, '$1'));
  assert.ok(exprs.length >= 15, `found ${exprs.length} queries`);
  const titles = dash.panels.map((p: { title: string }) => p.title).join(' | ');
  for (const want of [/retained bytes\/request/i, /live heap/i, /verdict/i]) assert.match(titles, want);
  const exported = exportedNames();
  for (const e of exprs) for (const n of namesIn(e)) assert.ok(exported.has(n), `dashboard query uses ${n}, which leakwatch does not export: ${e}`);
  if (!hasPromtool()) { t.diagnostic(`PromQL syntax check skipped: ${NO_PROMTOOL}`); return; }
  // Grafana's variables replaced by what they expand to, each query checked as a recording rule.
  const concrete = exprs.map((e) => e.replace(/\$__rate_interval/g, '5m').replace(/\$(job|instance|route)\b/g, '.*'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'leakwatch-dash-'));
  try {
    const file = path.join(tmp, 'dash.rules.yml');
    const body = concrete.map((e, i) => `      - record: dashboard:query_${i}\n        expr: ${JSON.stringify(e)}`).join('\n');
    fs.writeFileSync(file, `groups:\n  - name: dashboard\n    rules:\n${body}\n`);
    const r = await promtool(['check', 'rules', file]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, new RegExp(`SUCCESS: ${concrete.length} rules found`));
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('examples/prometheus/README.md lists every series with the aggregator the code sets', () => {
  const md = fs.readFileSync(path.join(dir, 'README.md'), 'utf8');
  const rows = new Map<string, { type: string; aggregator: string }>();
  for (const m of md.matchAll(/^\| `leakwatch_([a-z_]+)` \| ([a-z]+)[^|]*\| [^|]*\| (sum|average|min|max) \|/gm)) rows.set(m[1], { type: m[2], aggregator: m[3] });
  assert.equal(rows.size, SERIES.length, 'one table row per series');
  for (const d of SERIES) {
    const row = rows.get(d.name);
    assert.ok(row, `README.md misses leakwatch_${d.name}`);
    assert.equal(row.type, d.type, d.name);
    assert.equal(row.aggregator, d.aggregator, d.name);
  }
});
