import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { get, request, postJson } from '../helpers';
import { startFixture, XSS_PATH, XSS_URL, type Fixture } from './fixture';
import { CSP } from '../../src/core/http/respond';
import { forceFullGc } from '../../src/core/gc';

let fx: Fixture;
before(async () => { fx = await startFixture(); });
after(async () => { await fx.close(); });

const form = (port: number, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
  request(port, 'POST', path, { body: new URLSearchParams(fields).toString(), headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers } });

test('every page is HTML with the CSP, no inline script or style, links under the mount point', async () => {
  await get(fx.port, '/keep');
  const pages = ['/__leaks', '/__leaks/', `/__leaks/routes/${encodeURIComponent('GET /keep')}`, '/__leaks/status/snapshot',
    ...['environment', 'modules', 'globals', 'resources', 'heap', 'gc', 'warnings'].map((n) => `/__leaks/status/${n}`)];
  for (const p of pages) {
    const r = await get(fx.port, p);
    assert.equal(r.status, 200, p);
    assert.match(String(r.headers['content-type']), /^text\/html/, p);
    assert.equal(r.headers['content-security-policy'], CSP, p);
    assert.ok(!/<script(?![^>]*\bsrc=)[^>]*>/i.test(r.body), `${p} has an inline script`);
    assert.ok(!/<style|\sstyle="/i.test(r.body), `${p} has an inline style`);
    assert.ok(!/\son[a-z]+=/i.test(r.body), `${p} has an inline event handler`);
    for (const m of r.body.matchAll(/\s(?:href|src|action)="(\/[^"]*)"/g)) assert.ok(m[1].startsWith('/__leaks'), `${p} links outside the mount point: ${m[1]}`);
  }
  const css = await get(fx.port, '/__leaks/assets/dashboard.css');
  assert.equal(css.status, 200);
  assert.match(String(css.headers['content-type']), /^text\/css/);
  assert.equal((await get(fx.port, '/__leaks/assets/..%2Fpackage.json')).status, 404);
  assert.equal((await get(fx.port, '/__leaks/assets/nope.js')).status, 404);
  assert.equal((await request(fx.port, 'HEAD', '/__leaks')).status, 200);
  // An unknown route page is a 404 page, with the (escaped) key.
  const nf = await get(fx.port, `/__leaks/routes/${encodeURIComponent('GET /<b>nope</b>')}`);
  assert.equal(nf.status, 404);
  assert.ok(nf.body.includes('GET /&lt;b&gt;nope&lt;/b&gt;'));
});

test('attacker-controlled route names and URLs are escaped in the HTML', async () => {
  await get(fx.port, XSS_URL);
  const key = `GET ${XSS_PATH}`;
  const ov = await get(fx.port, '/__leaks');
  assert.ok(!ov.body.includes('<img'), 'raw <img> in the overview');
  assert.ok(ov.body.includes('&lt;img src=x onerror=alert(1)&gt;'));
  assert.ok(ov.body.includes(`href="/__leaks/routes/${encodeURIComponent(key)}"`));
  const page = await get(fx.port, `/__leaks/routes/${encodeURIComponent(key)}`);
  assert.equal(page.status, 200);
  assert.ok(!page.body.includes('<img'));
  // In attributes too (the probe form carries the route).
  assert.ok(page.body.includes('value="/&lt;img src=x onerror=alert(1)&gt;"'));
});

test('status pages are also JSON', async () => {
  const idx = (await get(fx.port, '/__leaks/api/status')).json();
  assert.deepEqual(idx.pages.map((p: { name: string }) => p.name), ['environment', 'modules', 'globals', 'resources', 'heap', 'gc', 'warnings']);
  const env = (await get(fx.port, '/__leaks/api/status/environment')).json();
  assert.equal(env.node, process.version);
  assert.equal(env.v8, process.versions.v8);
  assert.ok(env.heap.heapSizeLimit > 0);
  assert.deepEqual(env.execArgv, process.execArgv);
  // Modules may load lazily while the request is served: the count lies between before and after.
  const cjsBefore = Object.keys(require.cache).length;
  const mods = (await get(fx.port, '/__leaks/api/status/modules')).json();
  assert.ok(mods.commonjs.count >= cjsBefore && mods.commonjs.count <= Object.keys(require.cache).length);
  assert.ok(mods.commonjs.packages.some((p: { name: string }) => p.name === 'ejs'));
  assert.ok(mods.builtins.names.includes('http'));
  // An ES module loaded now shows up among the ES modules (there is no require.cache for them),
  // under its package. Not as "the count plus one": V8 drops the scripts of other modules once
  // their code is collected, and the dashboard's checkpoints force GCs in between.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lw-esm-'));
  const pkg = `lw-esm-probe-${process.pid}`;
  const file = path.join(dir, 'node_modules', pkg, 'index.mjs');
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, 'export const x = 1;\n');
  assert.ok(!mods.esm.packages.some((p: { name: string }) => p.name === pkg));
  await import(pathToFileURL(file).href);
  const mods2 = (await get(fx.port, '/__leaks/api/status/modules')).json();
  assert.deepEqual(mods2.esm.packages.find((p: { name: string }) => p.name === pkg), { name: pkg, count: 1 });
  assert.ok(mods2.esm.count >= 1);
  fs.rmSync(dir, { recursive: true, force: true });
  const res = (await get(fx.port, '/__leaks/api/status/resources')).json();
  assert.equal(res.total, res.byType.reduce((a: number, r: { count: number }) => a + r.count, 0));
  assert.ok(res.byType.some((r: { type: string }) => r.type === 'TCPServerWrap'));
  const heap = (await get(fx.port, '/__leaks/api/status/heap')).json();
  assert.ok(heap.spaces.some((s: { name: string }) => s.name === 'old_space'));
  // Two reads a few allocations apart.
  assert.ok(Math.abs(heap.totals.used - heap.spaces.reduce((a: number, s: { used: number }) => a + s.used, 0)) < 1e6);
  assert.equal((await get(fx.port, '/__leaks/api/status/nope')).status, 404);
});

test('GC history records a forced full GC from the shared observer', async () => {
  const before = (await get(fx.port, '/__leaks/api/status/gc')).json();
  forceFullGc();
  // Observer entries are delivered asynchronously.
  let after = before;
  for (let i = 0; i < 50 && after.total === before.total; i++) {
    await new Promise((r) => setTimeout(r, 20));
    after = (await get(fx.port, '/__leaks/api/status/gc')).json();
  }
  assert.ok(after.total > before.total);
  const forced = after.events.filter((e: { kind: string; forced: boolean }) => e.kind === 'major' && e.forced);
  assert.ok(forced.length >= 1);
  assert.ok(after.events.length <= after.kept);
  assert.ok(after.summary.some((s: { kind: string; count: number }) => s.kind === 'major' && s.count >= 1));
});

test('accidental globals are highlighted with the route that created them', async () => {
  // The recorder checks globals at most every 50 ms: space the requests so each is checked.
  for (let i = 0; i < 2; i++) { await new Promise((r) => setTimeout(r, 60)); await get(fx.port, '/global'); }
  const g = (await get(fx.port, '/__leaks/api/status/globals')).json();
  const rows = g.rows.filter((r: { name: string }) => r.name.startsWith('FooLeak'));
  assert.equal(rows.length, 2);
  for (const r of rows) {
    assert.equal(r.accidental, true);
    assert.deepEqual(r.routes, ['GET /global']);
  }
  assert.ok(!g.rows.some((r: { name: string }) => r.name === 'setTimeout' || r.name === 'Array'), 'standard globals listed');
  const html = (await get(fx.port, '/__leaks/status/globals')).body;
  assert.match(html, /<tr class="accidental"><td><code>FooLeakA<\/code>/);
});

test('MaxListenersExceededWarning is shown with the route in flight', async () => {
  for (let i = 0; i < 12; i++) await get(fx.port, '/listen');
  let w: { warnings: Array<{ name: string; routes: string[]; stack: string[] }> } = { warnings: [] };
  for (let i = 0; i < 50; i++) {
    w = (await get(fx.port, '/__leaks/api/status/warnings')).json();
    if (w.warnings.some((x) => x.name === 'MaxListenersExceededWarning' && x.routes.length > 0)) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const ml = w.warnings.find((x) => x.name === 'MaxListenersExceededWarning');
  assert.ok(ml, 'warning recorded');
  assert.deepEqual(ml.routes, ['GET /listen']);
  // The route page lists it too.
  assert.match((await get(fx.port, `/__leaks/routes/${encodeURIComponent('GET /listen')}`)).body, /MaxListenersExceededWarning/);
  assert.ok(ml.stack.some((l) => l.includes('fixture')), 'the stack names the handler\'s file');
  const html = (await get(fx.port, '/__leaks/status/warnings')).body;
  assert.ok(html.includes(`href="/__leaks/routes/${encodeURIComponent('GET /listen')}"`));
  // The hook is removed once no warning waits: the hot path pays nothing.
  assert.equal(fx.monitor.recorder.onFinish, undefined);
});

test('heap snapshot: confirmation required, form token checked, then streamed as a download', async () => {
  const pre = (await get(fx.port, '/__leaks/api/heap-snapshot')).json();
  assert.match(pre.warning, /secrets/);
  const page = (await get(fx.port, '/__leaks/status/snapshot')).body;
  assert.match(page, /contains secrets/);
  assert.match(page, /name="_token" value="[0-9a-f]{32}"/);
  const noConfirm = await postJson(fx.port, '/__leaks/api/heap-snapshot', {});
  assert.equal(noConfirm.status, 400);
  assert.match(noConfirm.json().error, /confirm/);
  const badToken = await form(fx.port, '/__leaks/api/heap-snapshot', { confirm: 'yes', _token: 'wrong' });
  assert.equal(badToken.status, 403);
  const cross = await postJson(fx.port, '/__leaks/api/heap-snapshot', { confirm: true }, { origin: 'http://evil.example' });
  assert.equal(cross.status, 403);
  if (!pre.ok) {
    // Not enough free memory on this machine right now: the refusal is the behaviour to check.
    const refused = await postJson(fx.port, '/__leaks/api/heap-snapshot', { confirm: true });
    assert.equal(refused.status, 503);
    assert.match(refused.json().error, /not enough free memory/);
    return;
  }
  const ok = await new Promise<{ status: number; headers: http.IncomingHttpHeaders; head: string; bytes: number }>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: fx.port, method: 'POST', path: '/__leaks/api/heap-snapshot', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, (res) => {
      let head = '';
      let bytes = 0;
      res.on('data', (c: Buffer) => { if (head.length < 100) head += c.toString('utf8', 0, 100); bytes += c.length; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, head, bytes }));
    });
    req.on('error', reject);
    req.end(new URLSearchParams({ confirm: 'yes', _token: fx.monitor.formToken }).toString());
  });
  assert.equal(ok.status, 200);
  assert.match(String(ok.headers['content-disposition']), /^attachment; filename="leakwatch-\d+-.*\.heapsnapshot"$/);
  assert.equal(ok.headers['content-security-policy'], CSP);
  assert.match(ok.head, /^\{"snapshot":\{"meta":/);
  assert.ok(ok.bytes > 1e6);
});

test('the no-JS probe form checks the token and answers with a redirect to the route page', async () => {
  await get(fx.port, '/keep');
  const bad = await form(fx.port, '/__leaks/probe', { method: 'GET', route: '/keep', iterations: '5', _token: 'nope' });
  assert.equal(bad.status, 403);
  const r = await form(fx.port, '/__leaks/probe', { method: 'GET', route: '/keep', iterations: '5', _token: fx.monitor.formToken });
  assert.equal(r.status, 303);
  assert.match(String(r.headers.location), new RegExp(`^/__leaks/routes/${encodeURIComponent('GET /keep').replace(/[()]/g, '\\$&')}(\\?probing=1)?#probe$`));
  // The route page says what happened: the probe's progress or its answer.
  const page = (await get(fx.port, String(r.headers.location).split('#')[0])).body;
  assert.match(page, /id="probe-form"/);
});
