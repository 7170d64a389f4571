import { test } from 'node:test';
import assert from 'node:assert/strict';
import Fastify from 'fastify';
import fastifyLeakwatchDefault, { fastifyLeakwatch } from '../../src/fastify/index';
import { get } from '../helpers';

test('Fastify 5: routeOptions.url templates with prefixes, 404 buckets, own path not recorded', async () => {
  const app = Fastify();
  await app.register(fastifyLeakwatch, { notice: false });
  await app.register(async (f) => {
    f.get('/users/:id', async (req: any) => ({ id: req.params.id }));
    await f.register(async (g) => { g.get('/orders/:orderId', async () => ({ ok: true })); }, { prefix: '/shop' });
  }, { prefix: '/v1' });
  app.get('/hello/:name', async (req: any) => ({ hi: req.params.name }));
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as any).port;
  try {
    await get(port, '/v1/users/1');
    await get(port, '/v1/users/2');
    await get(port, '/v1/shop/orders/9');
    await get(port, '/hello/x');
    for (let i = 0; i < 3; i++) assert.equal((await get(port, `/nope/${i}`)).status, 404);
    const r = await get(port, '/__leaks/api/routes');
    assert.equal(r.status, 200);
    const routes = new Map<string, number>(r.json().routes.map((x: any) => [`${x.method} ${x.route}`, x.requests]));
    assert.deepEqual([...routes.keys()].sort(), ['GET (unmatched)', 'GET /hello/:name', 'GET /v1/shop/orders/:orderId', 'GET /v1/users/:id'].sort());
    assert.equal(routes.get('GET /v1/users/:id'), 2);
    assert.equal(routes.get('GET (unmatched)'), 3);
    assert.equal(app.leakwatch.recorder.totalRequests, 7);
  } finally {
    await app.close();
  }
  assert.equal(app.leakwatch.closed, true);
});

test('Fastify: the default export is the same plugin, named "leakwatch"', () => {
  assert.equal(fastifyLeakwatchDefault, fastifyLeakwatch);
  assert.equal((fastifyLeakwatch as any)[Symbol.for('fastify.display-name')], 'leakwatch');
  assert.equal((fastifyLeakwatch as any)[Symbol.for('skip-override')], true);
});

test('Fastify: bad options are rejected with a TypeError at registration', async () => {
  const app = Fastify();
  await assert.rejects(async () => { await app.register(fastifyLeakwatch, { maxRoutes: -1 } as any); await app.ready(); }, (e: any) => e instanceof TypeError && /maxRoutes/.test(e.message) && /-1/.test(e.message));
  await app.close().catch(() => {});
});
