import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { get, mulberry32 as prng } from '../helpers';
import { startApp, rawExchange, splitResponses, type Flavour, type AppHandle } from './apps';


const SEED = 0x1eac;
const CASES = 2500; // per framework; each case is one request
const RAW_SHARE = 0.12; // sent over a raw socket: bytes no HTTP client library would send

class Gen {
  constructor(readonly r: () => number) {}
  int(n: number): number { return Math.floor(this.r() * n); }
  pick<T>(xs: readonly T[]): T { return xs[this.int(xs.length)]; }
  chance(p: number): boolean { return this.r() < p; }
  /** Strings an attacker would try: markup, control characters, unicode, huge, format strings. */
  str(): string {
    switch (this.int(10)) {
      case 0: return '<img src=x onerror=alert(1)>';
      case 1: return '\u0000\r\nSet-Cookie: a=b';
      case 2: return '\ud83d\ude00\u202e\ufeff';
      case 3: return 'x'.repeat(this.int(5000));
      case 4: return '%s%n%x{{7*7}}${7*7}';
      case 5: return '../../../../etc/passwd';
      case 6: return '/hello/:name'.slice(0, this.int(12));
      case 7: return String.fromCharCode(...Array.from({ length: this.int(40) }, () => this.int(0x3000)));
      case 8: return 'GET';
      default: return this.r().toString(36).slice(2, 2 + this.int(20));
    }
  }
  num(): number {
    return this.pick([0, -1, 1, 1.5, 1e9, -1e9, 2 ** 53, 1e308, -1e308, Number.MIN_VALUE, 30, 3, 100000, this.int(1e6) - 5e5]);
  }
  /** A random JSON value. The key `confirm` is left out: a confirmed heap snapshot is a
   * deliberate multi-second, memory-hungry action covered by its own tests, not fuzz material. */
  value(depth: number): unknown {
    const k = this.int(depth > 3 ? 4 : 7);
    switch (k) {
      case 0: return this.num();
      case 1: return this.str();
      case 2: return this.pick([null, true, false]);
      case 3: return this.str().slice(0, 5);
      case 4: return Array.from({ length: this.int(5) }, () => this.value(depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        const keys = ['method', 'route', 'iterations', 'warmup', 'unsafe', 'objects', 'timeoutMs', '_token', '__proto__', 'constructor', 'prototype', 'toString', 'body', 'headers', 'url'];
        for (let i = this.int(6); i > 0; i--) o[this.chance(0.85) ? this.pick(keys) : this.str().slice(0, 20)] = this.value(depth + 1);
        return o;
      }
    }
  }
  body(): string | Buffer {
    switch (this.int(9)) {
      case 0: return '';
      case 1: return JSON.stringify(this.value(0)).slice(0, this.int(200)); // truncated JSON
      case 2: return Buffer.from(Array.from({ length: this.int(300) }, () => this.int(256)));
      case 3: return `_token=${encodeURIComponent(this.str())}&method=GET&route=${encodeURIComponent(this.str())}`;
      case 4: return '{"a":' + '['.repeat(this.int(5000));
      case 5: return JSON.stringify({ pad: 'p'.repeat(60 * 1024 + this.int(20 * 1024)) }); // around the 64 KB limit
      case 6: return `{"method":"GET","route":${JSON.stringify(this.str())},"iterations":${JSON.stringify(this.num())}}`;
      default: return JSON.stringify(this.value(0));
    }
  }
  path(): string {
    const endpoints = ['/api/routes', '/api/route', '/api/process', '/api/gc', '/api/heap-snapshot', '/api/probe', '/api/status', '/api/status/heap',
      '/api/status/environment', '/metrics', '', '/', '/status', '/status/gc', '/status/snapshot', '/routes/GET%20%2Fhello%2F%3Aname', '/routes/' + encodeURIComponent(this.str()), '/assets/app.css', '/assets/' + encodeURIComponent(this.str()), '/probe'];
    let p = this.pick(endpoints);
    switch (this.int(12)) {
      case 0: p += '/' + encodeURIComponent(this.str()); break;
      case 1: p = p.toUpperCase(); break;
      case 2: p = p.replace(/\//g, '//'); break;
      case 3: p += '%' + this.pick(['', 'Z', 'ZZ', 'e0%a4%a', 'c0%af', '00', '2f', 'ff']); break;
      case 4: p = '/..' + p + '/..'; break;
      case 5: p += '/' + 'seg/'.repeat(this.int(1500)); break;
      default: break;
    }
    let q = '';
    if (this.chance(0.4)) {
      const params = ['method', 'route', 'refresh', 'probing', 'x', '__proto__'];
      q = '?' + Array.from({ length: 1 + this.int(4) }, () => `${this.pick(params)}=${encodeURIComponent(this.str()).slice(0, 300)}`).join('&');
    }
    // Now and then a path that is not ours at all: it must reach the app untouched.
    const base = this.chance(0.05) ? this.pick(['/__leaksX', '/__leak', '/x/__leaks', '/__LEAKS']) : '/__leaks';
    return base + p + q;
  }
  method(): string {
    if (this.chance(0.35)) return 'POST';
    if (this.chance(0.5)) return 'GET';
    return this.pick(['HEAD', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'TRACE', 'PROPFIND', 'PURGE', 'QUERY', 'M-SEARCH']);
  }
  headers(port: number, token: string): Record<string, string> {
    const h: Record<string, string> = {};
    const ct = this.pick(['application/json', 'application/json; charset=utf-8', 'application/x-www-form-urlencoded', 'text/plain', 'multipart/form-data; boundary=x', '', 'application/json, text/html', '*/*', 'APPLICATION/JSON']);
    if (ct !== '') h['content-type'] = ct;
    if (this.chance(0.3)) h.origin = this.pick([`http://127.0.0.1:${port}`, 'http://evil.example', 'null', 'garbage', `http://127.0.0.1:${port + 1}`, `https://127.0.0.1:${port}`]);
    if (this.chance(0.2)) h['sec-fetch-site'] = this.pick(['same-origin', 'same-site', 'cross-site', 'none', 'bogus']);
    if (this.chance(0.1)) h['x-leakwatch-probe'] = this.pick(['wrong', token]);
    if (this.chance(0.2)) h.accept = this.pick(['text/html', 'application/json', '*/*']);
    return h;
  }
}

interface Outcome { status: number; contentType: string; body: string; parserRejected: boolean; sent?: string; method?: string; target?: string }

function viaAgent(agent: http.Agent, port: number, method: string, path: string, headers: Record<string, string>, body: string | Buffer | undefined): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    // Node's client frames a body on GET/HEAD/DELETE/OPTIONS/TRACE only with an explicit length;
    // without one the bytes would be read as the next request (raw cases cover that garbage).
    if (body !== undefined && body.length > 0) headers = { ...headers, 'content-length': String(Buffer.byteLength(body)) };
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString('utf8'), parserRejected: false }));
      res.on('error', reject);
    });
    req.on('error', reject);
    if (body !== undefined && body.length > 0) req.write(body);
    req.end();
  });
}

async function viaRaw(g: Gen, port: number): Promise<Outcome> {
  // Request lines and headers a client library would refuse to produce.
  const printable = () => String.fromCharCode(...Array.from({ length: 1 + g.int(60) }, () => 0x21 + g.int(0x5e)));
  const target = g.pick([
    () => '/__leaks/' + printable(),
    () => '/__leaks/api/' + Array.from({ length: g.int(30) }, () => '%' + g.int(256).toString(16).padStart(2, '0')).join(''),
    () => '/__leaks/api/routes?' + printable(),
    () => '/__leaks\u00ff/api',
    () => 'http://127.0.0.1/__leaks/api/routes',
    () => '*',
  ])();
  const method = g.pick(['GET', 'POST', 'HEAD', 'get', 'G\u00c9T', 'SEARCH', 'OPTIONS']);
  const extra = g.pick(['', 'Content-Length: 5\r\nContent-Length: 6\r\n', 'Transfer-Encoding: chunked\r\nContent-Length: 3\r\n', 'X-Bad\u0001: 1\r\n', 'Content-Type: application/json\r\nContent-Length: 2\r\n', 'Host: second\r\n', 'Content-Length: -1\r\n']);
  const body = extra.includes('Content-Length: 2') ? '{}' : '';
  const sent = `${method} ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}Connection: close\r\n\r\n${body}`;
  const got = await rawExchange(port, Buffer.from(sent, 'latin1'), () => false);
  const [first] = splitResponses(got);
  if (first === undefined) return { status: 0, contentType: '', body: '', parserRejected: true, sent, method, target };
  const ct = /\r\ncontent-type: *([^\r]*)/i.exec(first.head)?.[1] ?? '';
  // The HTTP parser's rejection, before any request handler ran: Node's bare 400/431 with no
  // body, or Fastify's clientError JSON ("Client Error").
  const parserRejected = (first.status === 400 || first.status === 431)
    && ((ct === '' && first.body === '') || /^\{"error":"Bad Request","message":"Client Error","statusCode":400\}$/.test(first.body));
  return { status: first.status, contentType: ct, body: first.body, parserRejected, sent, method, target };
}

async function fuzz(flavour: Flavour): Promise<{ cases: number; byStatus: Record<string, number>; parserRejected: number; ms: number }> {
  const app: AppHandle = await startApp(flavour, { notice: false });
  const g = new Gen(prng(SEED + (flavour === 'Fastify 5' ? 1 : 0)));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 6 });
  const byStatus: Record<string, number> = {};
  let parserRejected = 0;
  const t0 = performance.now();
  try {
    await get(app.port, '/hello/seed');
    const token = app.monitor!.probeToken;
    let next = 0;
    const worker = async () => {
      while (next < CASES) {
        const i = next++;
        const raw = g.chance(RAW_SHARE);
        let method = g.method();
        let path = g.path();
        const headers = g.headers(app.port, token);
        const body = method === 'GET' || method === 'HEAD' ? (g.chance(0.1) ? g.body() : undefined) : g.body();
        let what = raw ? `case ${i} (raw)` : `case ${i}: ${method} ${path.slice(0, 200)} ${JSON.stringify(headers)} body ${JSON.stringify(String(body ?? '').slice(0, 120))}`;
        let o: Outcome;
        try {
          o = raw ? await viaRaw(g, app.port) : await viaAgent(agent, app.port, method, path, headers, body);
        } catch (e) {
          throw new Error(`${what}: ${(e as Error).message}`);
        }
        byStatus[o.status] = (byStatus[o.status] ?? 0) + 1;
        if (o.method !== undefined) method = o.method;
        // A raw absolute-form target ("GET http://host/__leaks/…") is not under our mount point.
        if (o.target !== undefined) path = o.target;
        if (o.sent !== undefined) what = `case ${i} (raw ${JSON.stringify(o.sent.slice(0, 300))}) → ${o.status} ${o.body.slice(0, 200)}`;
        if (o.parserRejected) { parserRejected++; continue; }
        assert.ok(o.status >= 200 && o.status < 500, `${what} → ${o.status} ${o.body.slice(0, 300)}`);
        const isJson = /application\/json/.test(o.contentType);
        if (method === 'HEAD') { assert.equal(o.body, '', `${what}: HEAD has no body`); continue; }
        if (!app.monitor!.isOwnPath(path)) {
          // Not ours: the app's own answer (its 404, or Fastify's own 4xx for a body it cannot parse).
          assert.ok(o.status >= 400 && o.status < 500 && /application\/json/.test(o.contentType), `${what}: the app's own 4xx`);
          assert.doesNotMatch(o.body, /leakwatch/, what);
          continue;
        }
        if (o.status >= 400) {
          // An error is JSON with a message; the one exception is the dashboard's own 404 page
          // for an unknown route page, which a browser (GET) asked for.
          const page = /text\/html/.test(o.contentType) && o.status === 404 && !/\/api\//.test(path) && method === 'GET';
          assert.ok(isJson || page, `${what} → ${o.status} with ${o.contentType}`);
          if (isJson) {
            const b = JSON.parse(o.body);
            assert.equal(typeof (b.error ?? b.message), 'string', `${what}: error message`);
          }
        } else if (isJson && o.body !== '') {
          assert.doesNotThrow(() => JSON.parse(o.body), what);
        }
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));
    // Survived: the app answers, leakwatch answers, and nothing reached the fault handler.
    assert.equal((await get(app.port, '/hello/after')).body, '{"hi":"after"}');
    const routes = await get(app.port, '/__leaks/api/routes');
    assert.equal(routes.status, 200);
    assert.equal(app.monitor!.faults, 0, 'no fuzz case reached leakwatch\'s fault handler');
    // Requests to paths that are not ours went to the app and were recorded in bounded buckets.
    assert.ok(app.monitor!.recorder.routes.size <= app.monitor!.options.maxRoutes + 40);
  } finally {
    agent.destroy();
    await app.close();
  }
  return { cases: CASES, byStatus, parserRejected, ms: performance.now() - t0 };
}

for (const flavour of ['Express 5', 'Fastify 5'] as const) {
  test(`${flavour}: ${CASES} seeded random and hostile requests (seed ${SEED}): every answer a 2xx/3xx/4xx, errors JSON, server alive`, { timeout: 120_000 }, async () => {
    const r = await fuzz(flavour);
    console.log(`# fuzz ${flavour}: ${r.cases} cases in ${Math.round(r.ms)} ms; by status ${JSON.stringify(r.byStatus)}; rejected by Node's HTTP parser before any JS: ${r.parserRejected}`);
  });
}
