import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { request, type Reply } from '../helpers';
import { isLoopbackRequest } from '../../src/core/net';
import { FLAVOURS, startApp, rawExchange, splitResponses, type AppHandle } from './apps';

/** Every state-changing endpoint any feature may register; the test covers those present. */
const CANDIDATES = ['/api/gc', '/api/heap-snapshot', '/api/probe', '/probe'];

/** POST endpoints actually registered, found the way a client would: OPTIONS → 405 with Allow. */
async function postEndpoints(app: AppHandle): Promise<string[]> {
  const out: string[] = [];
  for (const p of CANDIDATES) {
    const r = await request(app.port, 'OPTIONS', '/__leaks' + p);
    if (r.status === 405 && String(r.headers.allow).split(', ').includes('POST')) out.push(p);
  }
  return out;
}

function post(app: AppHandle, p: string, body: string, headers: Record<string, string>): Promise<Reply> {
  return request(app.port, 'POST', '/__leaks' + p, { body, headers });
}

/** Refused by the cross-site rules (403 JSON error naming the reason). */
function assertRefused(r: Reply, status: 403 | 415, what: string, re: RegExp): void {
  assert.equal(r.status, status, `${what}: ${r.body}`);
  assert.match(r.headers['content-type'] ?? '', /application\/json/, what);
  assert.match(r.json().error, re, what);
}

/** Past the cross-site and content-type checks: whatever the endpoint then says, it is not those. */
function assertPassed(r: Reply, what: string): void {
  assert.ok(r.status !== 403 && r.status !== 415 && r.status < 500, `${what}: got ${r.status} ${r.body}`);
  if (r.status !== 303) assert.doesNotThrow(() => r.json(), what);
}

for (const flavour of FLAVOURS) {
  test(`${flavour}: every POST endpoint refuses cross-site requests (403) and wrong content types (415)`, async () => {
    // A custom authorize that admits loopback sockets whatever the Host, so that the Origin/Host
    // comparison is tested on its own (the default rule also refuses non-local Host names).
    const app = await startApp(flavour, { notice: false, authorize: isLoopbackRequest });
    try {
      const endpoints = await postEndpoints(app);
      assert.ok(endpoints.includes('/api/gc'), `found ${endpoints.join(', ')}`);
      const host = `127.0.0.1:${app.port}`;
      const json = { 'content-type': 'application/json' };
      let cases = 0;
      for (const p of endpoints) {
        const ok = (r: Reply, what: string) => { cases++; assertPassed(r, `${p} ${what}`); };
        const no = (r: Reply, status: 403 | 415, what: string, re: RegExp) => { cases++; assertRefused(r, status, `${p} ${what}`, re); };

        ok(await post(app, p, '{}', json), 'plain JSON, no Origin (curl)');
        ok(await post(app, p, '{}', { 'content-type': 'Application/JSON; charset=utf-8' }), 'JSON with parameters, odd case');
        ok(await post(app, p, '{}', { ...json, origin: `http://${host}` }), 'same-origin Origin');
        ok(await post(app, p, '{}', { ...json, origin: `http://localhost:${app.port}`, host: `LocalHost:${app.port}` }), 'same host, Host header in other case');
        ok(await post(app, p, '{}', { ...json, origin: 'http://127.0.0.1', host: '127.0.0.1:80' }), 'default port implied in Origin');
        ok(await post(app, p, '{}', { ...json, origin: 'http://127.0.0.1:80', host: '127.0.0.1' }), 'default port implied in Host');
        ok(await post(app, p, '{}', { ...json, origin: 'https://dev.example', host: 'dev.example' }), 'https origin behind a proxy keeping Host');
        ok(await post(app, p, '{}', { ...json, 'sec-fetch-site': 'same-origin', origin: `http://${host}` }), 'Sec-Fetch-Site: same-origin');
        ok(await post(app, p, '{}', { ...json, 'sec-fetch-site': 'none' }), 'Sec-Fetch-Site: none');

        no(await post(app, p, '{}', { ...json, origin: 'http://evil.example' }), 403, 'foreign Origin', /cross-site/);
        no(await post(app, p, '{}', { ...json, origin: `http://127.0.0.1:${app.port + 1}` }), 403, 'same name, other port', /cross-site/);
        no(await post(app, p, '{}', { ...json, origin: 'https://dev.example', host: 'dev.example:8443' }), 403, 'default https port vs explicit other port', /cross-site/);
        no(await post(app, p, '{}', { ...json, origin: `http://${host}.evil.example` }), 403, 'suffix attack', /cross-site/);
        no(await post(app, p, '{}', { ...json, origin: `http://user@${host}` }), 403, 'userinfo in Origin', /cross-site/);
        no(await post(app, p, '{}', { ...json, origin: 'null' }), 403, 'Origin: null (sandboxed frame, file://)', /Origin: null/);
        no(await post(app, p, '{}', { ...json, origin: 'not a url' }), 403, 'unparsable Origin', /cross-site/);
        no(await post(app, p, '{}', { ...json, origin: `file://${host}` }), 403, 'non-http Origin', /cross-site/);
        no(await post(app, p, '{}', { ...json, origin: `http://${host}`, host: `${host}/x@evil` }), 403, 'Host with a path', /cross-site/);
        no(await post(app, p, '{}', { ...json, 'sec-fetch-site': 'cross-site' }), 403, 'Sec-Fetch-Site: cross-site', /Sec-Fetch-Site: cross-site/);
        no(await post(app, p, '{}', { ...json, 'sec-fetch-site': 'same-site' }), 403, 'Sec-Fetch-Site: same-site (a sibling subdomain)', /Sec-Fetch-Site: same-site/);
        no(await post(app, p, '{}', { ...json, 'sec-fetch-site': 'cross-site', origin: `http://${host}` }), 403, 'cross-site wins over a matching Origin', /cross-site/);

        no(await post(app, p, '{}', { 'content-type': 'text/plain' }), 415, 'text/plain (a CORS-simple type)', /content type must be application\/json/);
        no(await post(app, p, '--x\r\n\r\n--x--', { 'content-type': 'multipart/form-data; boundary=x' }), 415, 'multipart form', /content type/);
        no(await post(app, p, '{}', {}), 415, 'no content type', /received none/);
        no(await post(app, p, '{}', { 'content-type': 'application/jsonp' }), 415, 'look-alike type', /application\/jsonp/);

        // The no-JS form: only with our token, checked before the endpoint acts.
        const form = { 'content-type': 'application/x-www-form-urlencoded' };
        no(await post(app, p, 'confirm=yes', form), 403, 'form without token', /form token/);
        no(await post(app, p, '_token=0000&confirm=yes', form), 403, 'form with a wrong token', /form token/);
        no(await post(app, p, `_token=${app.monitor!.formToken.toUpperCase()}`, form), 403, 'form with a token in the wrong case', /form token/);
        no(await post(app, p, `_token=${app.monitor!.formToken}`, { ...form, origin: 'http://evil.example' }), 403, 'form with the token but from another site', /cross-site/);
        ok(await post(app, p, `_token=${app.monitor!.formToken}`, { ...form, origin: `http://${host}` }), 'form with the right token');

        // GET/HEAD cannot reach a state-changing endpoint.
        const g = await request(app.port, 'GET', '/__leaks' + p);
        cases++;
        assert.ok(g.status === 405 || g.status === 200, `${p} GET: ${g.status}`);
        if (g.status === 405) assert.match(String(g.headers.allow), /POST/);
      }

      // Origin without any Host: nothing to compare it with, so refused (HTTP/1.0 allows no Host).
      const raw = await rawExchange(app.port, 'POST /__leaks/api/gc HTTP/1.0\r\nOrigin: http://127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}', () => false);
      const [resp] = splitResponses(raw);
      cases++;
      assert.equal(resp.status, 403, raw.slice(0, 300));
      assert.match(resp.body, /cross-site/);
      console.log(`# ${flavour}: ${cases} cross-site/content-type cases on ${endpoints.join(', ')}`);
    } finally { await app.close(); }
  });
}

test('POST /api/gc forces a full GC and answers the heap before and after; refused requests force none', async () => {
  const app = await startApp('Express 5', { notice: false });
  const forced: number[] = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const d = (e as any).detail ?? {};
      if ((d.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0 && d.kind === constants.NODE_PERFORMANCE_GC_MAJOR) forced.push(e.startTime);
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  const settle = () => new Promise((r) => setTimeout(r, 100));
  try {
    const keep: string[] = [];
    for (let i = 0; i < 2000; i++) keep.push(Math.random().toString(36).repeat(4) + i);
    keep.length = 0; // garbage for the GC to find
    const r = await post(app, '/api/gc', '{}', { 'content-type': 'application/json' });
    assert.equal(r.status, 200);
    const b = r.json();
    for (const k of ['heapUsed', 'heapTotal', 'external', 'rss']) {
      assert.equal(typeof b.before[k], 'number');
      assert.equal(typeof b.after[k], 'number');
    }
    assert.equal(b.freedBytes, b.before.heapUsed - b.after.heapUsed);
    assert.ok(b.durationMs >= 0);
    await settle();
    assert.ok(forced.length >= 1, 'a forced mark-compact ran');

    forced.length = 0;
    await post(app, '/api/gc', '{}', { 'content-type': 'application/json', origin: 'http://evil.example' });
    await post(app, '/api/gc', '{}', { 'content-type': 'text/plain' });
    await post(app, '/api/gc', '{"a":', { 'content-type': 'application/json' });
    await post(app, '/api/gc', 'x=1', { 'content-type': 'application/x-www-form-urlencoded' });
    await settle();
    assert.deepEqual(forced, [], 'no refused request reached the GC');

    const f = await post(app, '/api/gc', `_token=${app.monitor!.formToken}`, { 'content-type': 'application/x-www-form-urlencoded' });
    assert.equal(f.status, 303);
    assert.equal(f.headers.location, '/__leaks');
  } finally {
    obs.disconnect();
    await app.close();
  }
});
