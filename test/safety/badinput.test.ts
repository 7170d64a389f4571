import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, get, type Reply } from '../helpers';
import { FLAVOURS, startApp, rawExchange, splitResponses, type AppHandle } from './apps';

const JSON_CT = { 'content-type': 'application/json' };

/** A 4xx JSON error with a message: the only acceptable answer to bad input. */
function assertJsonError(r: { status: number; headers: Record<string, unknown>; body: string }, status: number | number[], what: string, re?: RegExp): void {
  const ok = Array.isArray(status) ? status.includes(r.status) : r.status === status;
  assert.ok(ok, `${what}: expected ${String(status)}, got ${r.status} ${r.body.slice(0, 300)}`);
  assert.match(String(r.headers['content-type'] ?? ''), /application\/json/, `${what}: content type`);
  const body = JSON.parse(r.body);
  // leakwatch's own errors are { error }; Fastify's URL rejection (before any hook) is its own JSON.
  const message = typeof body.error === 'string' && body.error.length > 0 ? body.error : body.message;
  assert.equal(typeof message, 'string', `${what}: a message`);
  if (re) assert.match(message, re, what);
}

function headersOf(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of raw.split('\r\n').slice(1)) {
    const i = line.indexOf(':');
    if (i > 0) out[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}

/** One raw request on its own connection; the reply parsed enough for assertions. */
async function raw(app: AppHandle, text: string | Buffer): Promise<{ status: number; headers: Record<string, string>; body: string; closed: boolean }> {
  const got = await rawExchange(app.port, text, () => false);
  const [first] = splitResponses(got);
  assert.ok(first, `an answer to ${JSON.stringify(String(text).slice(0, 80))}`);
  return { status: first.status, headers: headersOf(first.head), body: first.body, closed: /\r\nconnection: *close/i.test(first.head) };
}

for (const flavour of FLAVOURS) {
  test(`${flavour}: hostile input to leakwatch's endpoints gets a 4xx JSON error with a message, never a 5xx`, async () => {
    const app = await startApp(flavour, { notice: false });
    let cases = 0;
    const expectErr = (r: Reply | { status: number; headers: Record<string, unknown>; body: string }, status: number | number[], what: string, re?: RegExp) => { cases++; assertJsonError(r as any, status, what, re); };
    try {
      await get(app.port, '/hello/seed'); // one recorded route, so /api/route has something to find

      // Malformed JSON and wrong types.
      for (const body of ['{', '{"a":}', "{'a':1}", 'nul', '{"a":1}}', '\u0000', '{"a":"\ud800"', Buffer.from([0xff, 0xfe, 0x7b]).toString('latin1')]) {
        expectErr(await request(app.port, 'POST', '/__leaks/api/gc', { body, headers: JSON_CT }), 400, `malformed JSON ${JSON.stringify(body)}`, /malformed JSON|JSON object/);
      }
      for (const body of ['[]', '[1,2]', '"str"', '123', 'null', 'true']) {
        expectErr(await request(app.port, 'POST', '/__leaks/api/gc', { body, headers: JSON_CT }), 400, `non-object JSON ${body}`, /must be a JSON object/);
      }
      // Deeply nested JSON parses (V8's JSON.parse is iterative) and is still not an object we act on.
      expectErr(await request(app.port, 'POST', '/__leaks/api/gc', { body: '['.repeat(20000) + ']'.repeat(20000), headers: JSON_CT }), 400, 'deep nesting', /JSON object/);

      // Oversized bodies: declared, and streamed chunked without a length. The connection is closed.
      const big = JSON.stringify({ pad: 'x'.repeat(100 * 1024) });
      expectErr(await request(app.port, 'POST', '/__leaks/api/gc', { body: big, headers: JSON_CT }), 413, 'oversized body with Content-Length', /limit/);
      const chunked = await raw(app, `POST /__leaks/api/gc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n${(80 * 1024).toString(16)}\r\n${'x'.repeat(80 * 1024)}\r\n0\r\n\r\n`);
      expectErr(chunked, 413, 'oversized chunked body', /limit/);
      assert.equal(chunked.closed, true, 'Connection: close after a 413');
      expectErr(await raw(app, `POST /__leaks/api/gc HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{}`), 413, 'absurd Content-Length', /limit/);

      // The read-only API's query parameters.
      expectErr(await get(app.port, '/__leaks/api/route'), 400, 'missing query', /required/);
      expectErr(await get(app.port, '/__leaks/api/route?method=GET'), 400, 'missing route', /required/);
      expectErr(await get(app.port, '/__leaks/api/route?method=GET&route=/nope/:x'), 404, 'unknown route', /no recorded route/);
      expectErr(await get(app.port, '/__leaks/api/route?method=GET&route=%00%0d%0aSet-Cookie:%20x'), 404, 'control characters in route', /no recorded route/);
      expectErr(await get(app.port, '/__leaks/api/route?method=' + 'A'.repeat(5000) + '&route=/x'), 404, 'huge method', /no recorded route/);
      const manyParams = Array.from({ length: 1000 }, (_, i) => `p${i}=${i}`).join('&');
      expectErr(await get(app.port, `/__leaks/api/route?${manyParams}`), 400, '1,000 query parameters', /required/);

      // Unknown paths, traversal-looking paths, malformed percent-encoding, very long URLs.
      for (const p of ['/__leaks/nope', '/__leaks/api', '/__leaks/api/', '/__leaks/api/routes/extra', '/__leaks/api/ROUTES', '/__leaks/../etc/passwd', '/__leaks/%2e%2e/%2e%2e/etc/passwd', '/__leaks/api/status/NOPE', '/__leaks/api/%00', '/__leaks/%3Cscript%3E']) {
        expectErr(await raw(app, `GET ${p} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`), 404, `unknown path ${p}`);
      }
      for (const p of ['/__leaks/%ZZ', '/__leaks/api/%E0%A4%A', '/__leaks/%', '/__leaks/api/%C0%AF']) {
        expectErr(await raw(app, `GET ${p} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`), 400, `malformed percent-encoding ${p}`);
      }
      const long = await raw(app, `GET /__leaks/${'a'.repeat(12000)} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      expectErr(long, 404, 'a 12 KB URL');
      assert.ok(long.body.length < 1000, 'the echoed path is clipped');

      // Wrong methods: 405 with Allow; weird methods too; HEAD has headers and no body.
      for (const m of ['PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'M-SEARCH', 'PURGE', 'QUERY', 'POST']) {
        const r = await raw(app, `${m} /__leaks/api/routes HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
        expectErr(r, 405, `${m} /api/routes`, /not allowed/);
        assert.equal(r.headers.allow, 'GET, HEAD', `${m}: Allow`);
      }
      for (const m of ['GET', 'HEAD', 'PUT']) {
        const r = await raw(app, `${m} /__leaks/api/gc HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
        cases++;
        assert.equal(r.status, 405, `${m} /api/gc`);
        assert.equal(r.headers.allow, 'POST');
      }
      // A method the HTTP parser does not know never reaches any JS: Node (or Fastify's
      // clientError handler) answers 400 and closes. leakwatch has nothing to add; the server lives on.
      const brew = await raw(app, 'BREW /__leaks/api/routes HTTP/1.1\r\nHost: localhost\r\n\r\n');
      cases++;
      assert.equal(brew.status, 400);
      const head = await raw(app, 'HEAD /__leaks/api/routes HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n');
      cases++;
      assert.equal(head.status, 200);
      assert.equal(head.body, '');
      assert.ok(Number(head.headers['content-length']) > 0, 'HEAD announces the GET length');

      // Headers that lie: a form type with a JSON body, a JSON type with a form body, two types.
      expectErr(await request(app.port, 'POST', '/__leaks/api/gc', { body: '{"_token":"x"}', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 403, 'JSON under a form type', /form token/);
      expectErr(await request(app.port, 'POST', '/__leaks/api/gc', { body: 'a=1&b=2', headers: JSON_CT }), 400, 'form under a JSON type', /malformed JSON/);
      expectErr(await request(app.port, 'POST', '/__leaks/api/gc', { body: '{}', headers: { 'content-type': 'application/json, text/plain' } }), 415, 'a list of types', /content type/);

      // The server is fine afterwards: the app answers and leakwatch answers.
      assert.equal((await get(app.port, '/hello/after')).body, '{"hi":"after"}');
      assert.equal((await get(app.port, '/__leaks/api/routes')).status, 200);
      assert.equal(app.monitor!.faults, 0, 'no bad input reached the fault handler');
      console.log(`# ${flavour}: ${cases} hand-written hostile inputs`);
    } finally { await app.close(); }
  });
}
