import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { isLoopbackAddress, isLocalHostHeader } from '../../src/core/net';
import { leakwatch } from '../../src/express/index';
import { get } from '../helpers';
import { FLAVOURS, startApp, captureLogger, rawExchange } from './apps';

test('isLoopbackAddress: every spelling of loopback, and nothing that only looks like it', () => {
  const yes = ['127.0.0.1', '127.1.2.3', '127.255.255.254', '::1', '0:0:0:0:0:0:0:1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::1%lo'];
  const no = [undefined, '', '128.0.0.1', '10.0.0.1', '192.168.1.1', '203.0.113.5', '::ffff:203.0.113.5', '::2', 'fe80::1',
    '127.evil', '127.0.0.1.example.com', 'localhost', '127.0.0.1, 203.0.113.5', ' 127.0.0.1', '127.0.0.1 ', '0.0.0.0', '::', '127.0.0.1'.repeat(20)];
  for (const a of yes) assert.equal(isLoopbackAddress(a), true, `${a} is loopback`);
  for (const a of no) assert.equal(isLoopbackAddress(a), false, `${String(a)} is not loopback`);
});

test('isLocalHostHeader: names DNS cannot redirect (localhost, *.localhost, IP literals) and nothing else', () => {
  for (const h of [undefined, '', 'localhost', 'LOCALHOST:3000', 'localhost:80', 'app.localhost:8080', '127.0.0.1', '127.0.0.1:3000', '[::1]:3000', '[::1]', '10.1.2.3:80', '0x7f.1']) {
    assert.equal(isLocalHostHeader(h), true, String(h));
  }
  for (const h of ['evil.example', 'evil.example:3000', '127.0.0.1.nip.io:3000', 'localhost.evil.example', 'localhost@evil.example', 'localhost/x', 'local host', '[::1', 'x'.repeat(400)]) {
    assert.equal(isLocalHostHeader(h), false, h);
  }
});

for (const flavour of FLAVOURS) {
  test(`${flavour}: DNS rebinding and same-host proxies: a loopback socket with a foreign Host name is refused`, async () => {
    const app = await startApp(flavour, { notice: false });
    try {
      const port = app.port;
      // A page on evil.example whose name was rebound to 127.0.0.1 is "same-origin" with the dashboard.
      const r = await get(port, '/__leaks/api/routes', { host: `evil.example:${port}` });
      assert.equal(r.status, 403);
      assert.match(r.json().error, /DNS rebinding/);
      const p = await rawExchange(port, `POST /__leaks/api/heap-snapshot HTTP/1.1\r\nHost: evil.example:${port}\r\nOrigin: http://evil.example:${port}\r\nContent-Type: application/json\r\nContent-Length: 16\r\nConnection: close\r\n\r\n{"confirm":true}`, () => false);
      assert.match(p, /^HTTP\/1\.1 403/, 'no heap snapshot for a rebound page');
      // A reverse proxy on this machine arrives over loopback with the public name.
      assert.equal((await get(port, '/__leaks/api/routes', { host: 'app.example.com', 'x-forwarded-for': '203.0.113.5' })).status, 403);
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `app.localhost:${port}`]) {
        assert.equal((await get(port, '/__leaks/api/routes', { host })).status, 200, host);
      }
      // The app itself is not affected by the Host name.
      assert.equal((await get(port, '/hello/x', { host: 'evil.example' })).status, 200);
    } finally { await app.close(); }
  });

  test(`${flavour}: off under NODE_ENV=production unless enabled: true; nothing mounted, nothing recorded`, async () => {
    const saved = process.env.NODE_ENV;
    process.env.NODE_ENV = 'production';
    try {
      const cap = captureLogger();
      const off = await startApp(flavour, { logger: cap.logger });
      try {
        assert.equal(off.monitor?.options.enabled, false);
        const r = await get(off.port, '/__leaks/api/routes');
        // The app's own 404, not leakwatch's.
        assert.equal(r.status, 404);
        if (flavour === 'Fastify 5') assert.match(r.body, /Route GET:\/__leaks\/api\/routes not found/);
        else assert.deepEqual(r.json(), { app: 'own 404', url: '/__leaks/api/routes' });
        assert.equal((await get(off.port, '/__leaks')).status, 404);
        assert.equal((await get(off.port, '/hello/x')).status, 200);
        assert.equal(off.monitor?.recorder.totalRequests, 0);
        assert.equal(off.monitor?.recorder.routes.size, 0);
        assert.deepEqual(cap.infos, [], 'no startup notice when off');
      } finally { await off.close(); }

      const on = await startApp(flavour, { enabled: true, logger: cap.logger });
      try {
        assert.equal(on.monitor?.options.mode, 'production');
        await get(on.port, '/hello/x');
        const r = await get(on.port, '/__leaks/api/routes');
        assert.equal(r.status, 200);
        assert.deepEqual(r.json().routes.map((x: any) => `${x.method} ${x.route}`), ['GET /hello/:name']);
      } finally { await on.close(); }
    } finally {
      if (saved === undefined) delete process.env.NODE_ENV; else process.env.NODE_ENV = saved;
    }
  });

  test(`${flavour}: loopback only by default; X-Forwarded-For ignored unless trust proxy says to use it`, async () => {
    const xff = { 'x-forwarded-for': '203.0.113.5' };
    const plain = await startApp(flavour, { notice: false });
    try {
      assert.equal((await get(plain.port, '/__leaks/api/routes')).status, 200);
      // Trust proxy off: the header is the client's claim, the socket is loopback.
      assert.equal((await get(plain.port, '/__leaks/api/routes', xff)).status, 200);
    } finally { await plain.close(); }

    const proxied = await startApp(flavour, { notice: false }, { trustProxy: true });
    try {
      // Trust proxy on: the framework says the client is 203.0.113.5, so leakwatch refuses.
      const r = await get(proxied.port, '/__leaks/api/routes', xff);
      assert.equal(r.status, 403);
      assert.match(r.headers['content-type'] ?? '', /application\/json/);
      assert.match(r.json().error, /loopback clients only/);
      for (const spoof of ['127.evil', '203.0.113.5, 127.0.0.1', 'unknown']) {
        // proxy-addr and Fastify take the left-most untrusted entry; none of these is loopback.
        const s = await get(proxied.port, '/__leaks/api/process', { 'x-forwarded-for': spoof });
        assert.equal(s.status, 403, `X-Forwarded-For: ${spoof}`);
      }
      // A POST is refused before its body is looked at.
      const p = await rawExchange(proxied.port, 'POST /__leaks/api/gc HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 203.0.113.5\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}', (s) => s.includes('}'));
      assert.match(p, /^HTTP\/1\.1 403/);
      // The host app itself is untouched by leakwatch's refusal.
      assert.equal((await get(proxied.port, '/hello/x', xff)).status, 200);
      // With no header the client is the loopback socket again.
      assert.equal((await get(proxied.port, '/__leaks/api/routes')).status, 200);
      assert.equal((await get(proxied.port, '/__leaks/api/routes', { 'x-forwarded-for': '127.0.0.1' })).status, 200);
    } finally { await proxied.close(); }
  });

  test(`${flavour}: authorize(req) decides, fails closed on anything but true, and its faults refuse once-logged`, async () => {
    const cap = captureLogger();
    const seen: IncomingMessage[] = [];
    let mode: 'key' | 'async' | 'truthy' | 'throw' | 'reject' = 'key';
    const authorize = (req: IncomingMessage): any => {
      seen.push(req);
      if (mode === 'key') return req.headers['x-admin-key'] === 's3cret';
      if (mode === 'async') return new Promise((r) => setTimeout(() => r(req.headers['x-admin-key'] === 's3cret'), 5));
      if (mode === 'truthy') return 'yes';
      if (mode === 'throw') throw new Error('authorize exploded');
      return Promise.reject(new Error('authorize rejected'));
    };
    const app = await startApp(flavour, { authorize, logger: cap.logger, notice: false });
    try {
      const key = { 'x-admin-key': 's3cret' };
      const no = await get(app.port, '/__leaks/api/routes');
      assert.equal(no.status, 403);
      assert.match(no.json().error, /not authorized by the authorize option/);
      assert.equal((await get(app.port, '/__leaks/api/routes', key)).status, 200);
      // authorize replaces the loopback rule: it is the user's to judge proxies.
      assert.equal((await get(app.port, '/__leaks/api/routes', { ...key, 'x-forwarded-for': '203.0.113.5' })).status, 200);
      assert.ok(seen.length >= 3 && typeof seen[0].headers === 'object' && typeof seen[0].url === 'string', 'authorize gets the Node request');
      mode = 'async';
      assert.equal((await get(app.port, '/__leaks/api/routes', key)).status, 200);
      assert.equal((await get(app.port, '/__leaks/api/routes')).status, 403);
      mode = 'truthy';
      assert.equal((await get(app.port, '/__leaks/api/routes', key)).status, 403);
      assert.deepEqual(cap.warnings, []);
      mode = 'throw';
      for (let i = 0; i < 3; i++) {
        const r = await get(app.port, '/__leaks/api/routes', key);
        assert.equal(r.status, 403);
        assert.equal(typeof r.json().error, 'string');
      }
      mode = 'reject';
      assert.equal((await get(app.port, '/__leaks/api/routes', key)).status, 403);
      assert.equal(cap.warnings.length, 1, 'the fault is logged once');
      assert.match(cap.warnings[0], /authorize exploded/);
      assert.equal(app.monitor?.faults, 4);
      // The app's own routes never consult authorize.
      const before = seen.length;
      assert.equal((await get(app.port, '/hello/x')).status, 200);
      assert.equal(seen.length, before);
    } finally { await app.close(); }
  });
}

test('startup notice: one line, where the dashboard is and who may open it, through the logger option', async () => {
  const a = captureLogger();
  const mw = leakwatch({ logger: a.logger });
  mw.close();
  assert.equal(a.infos.length, 1);
  assert.doesNotMatch(a.infos[0], /\n/);
  assert.match(a.infos[0], /leakwatch \(express, (dev|production) mode\): dashboard at \/__leaks, open to loopback clients only/);

  const b = captureLogger();
  leakwatch({ logger: b.logger, path: '/ops/leaks', authorize: () => true }).close();
  assert.match(b.infos[0], /dashboard at \/ops\/leaks, open to clients your authorize\(\) allows/);

  const c = captureLogger();
  leakwatch({ logger: c.logger, notice: false }).close();
  leakwatch({ logger: c.logger, enabled: false }).close();
  assert.deepEqual(c.infos, []);

  // Fastify knows its address once listening, and says it.
  const f = captureLogger();
  const app = await startApp('Fastify 5', { logger: f.logger });
  try {
    assert.equal(f.infos.length, 1);
    assert.doesNotMatch(f.infos[0], /\n/);
    assert.equal(f.infos[0].includes(`dashboard at http://127.0.0.1:${app.port}/__leaks, open to loopback clients only`), true, f.infos[0]);
  } finally { await app.close(); }
  for (const cap of [a, b, c, f]) assert.deepEqual(cap.warnings, []);

  // A logger that throws must not break start-up.
  const broken = { info: () => { throw new Error('logger down'); }, warn: () => { throw new Error('logger down'); } };
  assert.doesNotThrow(() => leakwatch({ logger: broken }).close());
});
