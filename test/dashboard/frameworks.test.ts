import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { leakwatch } from '../../src/express/index';
import fastifyLeakwatch from '../../src/fastify/index';
import { get, listen, close } from '../helpers';

function linksOf(html: string): string[] {
  return [...html.matchAll(/\s(?:href|src|action)="(\/[^"]*)"/g)].map((m) => m[1]);
}

test('Express, mounted under a prefix: pages render and every link carries the prefix', async () => {
  const express = require('express');
  const app = express();
  const mw = leakwatch({ notice: false });
  app.use('/admin', mw);
  app.get('/admin/users/:id', (_req: unknown, res: { json(v: unknown): void }) => res.json({ ok: true }));
  const server: http.Server = http.createServer(app);
  const port = await listen(server);
  try {
    await get(port, '/admin/users/7');
    const ov = await get(port, '/admin/__leaks');
    assert.equal(ov.status, 200);
    assert.ok(ov.body.includes('/users/:id'));
    const links = linksOf(ov.body);
    assert.ok(links.length > 10);
    for (const l of links) assert.ok(l.startsWith('/admin/__leaks'), l);
    const routeLink = links.find((l) => l.includes('/routes/'));
    assert.ok(routeLink);
    const page = await get(port, routeLink);
    assert.equal(page.status, 200);
    assert.ok(page.body.includes('action="/admin/__leaks/probe"'));
    assert.equal((await get(port, '/admin/__leaks/assets/dashboard.js')).status, 200);
  } finally {
    mw.close();
    await close(server);
  }
});

test('Fastify: the overview, a route page and the status pages render', async () => {
  const Fastify = require('fastify');
  const app = Fastify();
  await app.register(fastifyLeakwatch, { notice: false });
  app.get('/users/:id', async () => ({ ok: true }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  try {
    await get(port, '/users/1');
    const ov = await get(port, '/__leaks');
    assert.equal(ov.status, 200);
    assert.ok(ov.body.includes(`href="/__leaks/routes/${encodeURIComponent('GET /users/:id')}"`));
    const page = await get(port, `/__leaks/routes/${encodeURIComponent('GET /users/:id')}`);
    assert.equal(page.status, 200);
    assert.match(page.body, /<code>\/users\/:id<\/code>/);
    for (const n of ['environment', 'modules', 'globals', 'resources', 'heap', 'gc', 'warnings', 'snapshot']) {
      assert.equal((await get(port, `/__leaks/status/${n}`)).status, 200, n);
    }
  } finally {
    await app.close();
  }
});
