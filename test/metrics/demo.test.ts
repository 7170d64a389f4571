import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot, get } from '../helpers';
import { assertPromtoolClean, parseExposition, pick, value } from './prom';

const demoPath = path.join(repoRoot, 'examples', 'demo', 'server.js');
const zooPath = path.join(repoRoot, 'examples', 'zoo', 'index.js');

test('the demo (examples/demo/server.js) serves lint-clean leakwatch metrics for the whole zoo', async (t) => {
  if (!fs.existsSync(demoPath)) { t.skip('examples/demo/server.js is not there yet'); return; }
  const demo = require(demoPath) as { start(o: object): Promise<{ port: number; close(): Promise<void> }> };
  const zoo = require(zooPath) as { scenarios: Array<{ method: string; path: string }>; sample(s: unknown, rng: () => number): string; mulberry32(seed: number): () => number };
  const d = await demo.start({ port: 0, rps: 0 });
  try {
    const rng = zoo.mulberry32(6);
    const sent = new Map<string, number>();
    for (let round = 0; round < 3; round++) {
      for (const s of zoo.scenarios) {
        const r = await get(d.port, zoo.sample(s, rng));
        assert.ok(r.status < 500, `${s.path} answered ${r.status}`);
        sent.set(s.path, (sent.get(s.path) ?? 0) + 1);
      }
    }
    const scrape = await get(d.port, '/__leaks/metrics');
    assert.equal(scrape.status, 200);
    assert.equal(scrape.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
    await assertPromtoolClean(scrape.body, t);
    const s = parseExposition(scrape.body);
    for (const [route, n] of sent) {
      assert.equal(value(s, 'leakwatch_route_requests_total', { method: 'GET', route }), n, route);
      assert.equal(pick(s, 'leakwatch_route_verdict', { route }).reduce((a, x) => a + x.value, 0), 1, `${route}: one current verdict`);
    }
    // Labels are the zoo's templates, never concrete URLs.
    const labels = new Set(pick(s, 'leakwatch_route_requests_total').map((x) => x.labels.route));
    for (const l of labels) assert.ok(sent.has(l) || l === '(unmatched)', `unexpected route label ${l}`);
  } finally {
    await d.close();
  }
});
