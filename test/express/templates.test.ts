import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { leakwatch } from '../../src/express/index';
import { get, listen, close } from '../helpers';

type ExpressFactory = any;

// Express 4 is installed under the alias "express4"; Express 5 as "express".
const flavours: Array<[string, ExpressFactory]> = [
  ['Express 5', require('express')],
  ['Express 4', require('express4')],
];

async function routesOf(port: number): Promise<Map<string, number>> {
  const r = await get(port, '/__leaks/api/routes');
  assert.equal(r.status, 200);
  return new Map(r.json().routes.map((x: any) => [`${x.method} ${x.route}`, x.requests]));
}

for (const [name, express] of flavours) {
  test(`${name}: route templates through nested routers, params and 404 buckets`, async () => {
    const app = express();
    const mw = leakwatch({ notice: false });
    app.use(mw);
    const users = express.Router({ mergeParams: true });
    users.get('/:id', (req: any, res: any) => res.json({ org: req.params.org, id: req.params.id }));
    users.post('/', (_req: any, res: any) => res.status(201).json({ ok: true }));
    const orgs = express.Router();
    orgs.use('/:org/users', users);
    app.use('/api/v1/orgs', orgs);
    app.get('/hello/:name', (req: any, res: any) => res.json({ hi: req.params.name }));
    app.get('/static/files', (_req: any, res: any) => res.send('x'));
    const server: http.Server = http.createServer(app);
    const port = await listen(server);
    try {
      for (const org of ['acme', 'globex', 'users']) {
        const r = await get(port, `/api/v1/orgs/${org}/users/${org === 'users' ? 'users' : '42'}`);
        assert.equal(r.status, 200);
      }
      await get(port, '/hello/bob');
      await get(port, '/hello/alice?x=1');
      await get(port, '/static/files');
      for (let i = 0; i < 5; i++) assert.equal((await get(port, `/missing/${i}`)).status, 404);
      const post = await new Promise<number>((resolve) => {
        const req = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/api/v1/orgs/acme/users/' }, (res) => { res.resume(); resolve(res.statusCode ?? 0); });
        req.end();
      });
      assert.equal(post, 201);
      // Own endpoints are not recorded.
      await get(port, '/__leaks/api/routes');
      const routes = await routesOf(port);
      assert.deepEqual([...routes.keys()].sort(), [
        'GET (unmatched)',
        'GET /api/v1/orgs/:org/users/:id',
        'GET /hello/:name',
        'GET /static/files',
        'POST /api/v1/orgs/:org/users',
      ].sort());
      assert.equal(routes.get('GET /api/v1/orgs/:org/users/:id'), 3);
      assert.equal(routes.get('GET /hello/:name'), 2);
      assert.equal(routes.get('GET (unmatched)'), 5);
    } finally {
      mw.close();
      await close(server);
    }
  });

  test(`${name}: a sub-app and a middleware mounted below a prefix`, async () => {
    const app = express();
    const mw = leakwatch({ notice: false });
    app.use(mw);
    const sub = express();
    sub.get('/items/:item', (req: any, res: any) => res.json({ item: req.params.item }));
    app.use('/shop', sub);
    const server = http.createServer(app);
    const port = await listen(server);
    try {
      assert.equal((await get(port, '/shop/items/7')).status, 200);
      const routes = await routesOf(port);
      assert.equal(routes.get('GET /shop/items/:item'), 1);
    } finally {
      mw.close();
      await close(server);
    }
  });

  // Regression: a sub-app's layer holds only a `mounted_app` closure, so the walk could not enter
  // it, and a sub-app mounted under a parameter was labelled with the request's values
  // (`/shops/acme/about`): one route per shop, until the table overflowed.
  test(`${name}: sub-apps mounted under parameters are labelled with their patterns`, async () => {
    const app = express();
    const mw = leakwatch({ notice: false });
    app.use(mw);
    const shop = express();
    const items = express.Router();
    items.get('/:item', (req: any, res: any) => res.json({ item: req.params.item }));
    shop.use('/items', items);
    shop.get('/about', (_req: any, res: any) => res.json({ ok: true }));
    const dept = express();
    dept.get('/x/:y', (req: any, res: any) => res.json({ y: req.params.y }));
    shop.use('/deep/:dept', dept);
    shop.get('/', (_req: any, res: any) => res.json({ home: true }));
    app.use('/shops/:shop', shop);
    // One router at two mounts with parameters: the first 64 values all come from the first.
    const api = express.Router();
    api.get('/ping', (_req: any, res: any) => res.json({ pong: true }));
    app.use('/v1/:tenant', api);
    app.use('/v2/:tenant', api);
    app.get('/after', (_req: any, res: any) => res.json({ ok: true }));
    const server = http.createServer(app);
    const port = await listen(server);
    try {
      // More shops than the per-route cache holds (64), so the template is also found past it.
      for (let i = 0; i < 70; i++) {
        assert.equal((await get(port, `/shops/s${i}/about`)).status, 200);
        assert.equal((await get(port, `/shops/s${i}`)).status, 200);
        assert.equal((await get(port, `/v1/t${i}/ping`)).status, 200);
      }
      for (let i = 0; i < 3; i++) assert.equal((await get(port, `/v2/t${i}/ping`)).status, 200);
      for (const p of ['/shops/acme/items/1', '/shops/globex/items/2', '/shops/a/deep/q/x/1', '/shops/b/deep/r/x/2', '/after']) {
        assert.equal((await get(port, p)).status, 200, p);
      }
      // A request the sub-app does not answer falls through to the parent's 404.
      assert.equal((await get(port, '/shops/acme/nothing')).status, 404);
      const routes = await routesOf(port);
      assert.deepEqual([...routes.keys()].sort(), [
        'GET (unmatched)',
        'GET /after',
        'GET /shops/:shop',
        'GET /shops/:shop/about',
        'GET /shops/:shop/deep/:dept/x/:y',
        'GET /shops/:shop/items/:item',
        'GET /v1/:tenant/ping',
        'GET /v2/:tenant/ping',
      ]);
      assert.equal(routes.get('GET /shops/:shop/about'), 70);
      assert.equal(routes.get('GET /shops/:shop'), 70);
      assert.equal(routes.get('GET /v1/:tenant/ping'), 70);
      assert.equal(routes.get('GET /v2/:tenant/ping'), 3, 'not read as the first mount once 64 values agreed');
      assert.equal(routes.get('GET /shops/:shop/items/:item'), 2);
      assert.equal(routes.get('GET /shops/:shop/deep/:dept/x/:y'), 2);
    } finally {
      mw.close();
      await close(server);
    }
  });
}

test('Express: the route table stays bounded under 100,000 distinct unmatched URLs and many routes', async () => {
  const express = require('express');
  const app = express();
  const mw = leakwatch({ notice: false, maxRoutes: 20 });
  app.use(mw);
  for (let i = 0; i < 40; i++) app.get(`/r${i}/:id`, (_req: any, res: any) => res.end('ok'));
  app.use((_req: any, res: any) => res.status(404).end());
  // Drive the real middleware and router in-process: 100k loopback HTTP requests would take minutes.
  const monitor = mw.monitor;
  const { PassThrough } = require('node:stream');
  let done = 0;
  const total = 100_000;
  await new Promise<void>((resolve) => {
    let i = 0;
    function one(): void {
      if (i >= total) return;
      const n = i++;
      const socket = new PassThrough();
      (socket as any).remoteAddress = '127.0.0.1';
      const req = new http.IncomingMessage(socket as any);
      req.method = 'GET';
      req.url = n % 10 === 0 ? `/r${(n / 10) % 40}/${n}` : `/nope/${n}/${Math.random()}`;
      req.headers = { host: 'x' };
      const res = new http.ServerResponse(req);
      res.assignSocket(socket as any);
      res.on('finish', () => { if (++done === total) resolve(); else setImmediate(one); });
      app(req, res);
    }
    for (let k = 0; k < 16; k++) one();
  });
  const routes = monitor.recorder.routes;
  // 20 named routes at most, plus the unmatched and overflow buckets of the one method used.
  assert.ok(routes.size <= 22, `route table has ${routes.size} entries`);
  assert.equal(routes.get('GET (unmatched)')?.requests, 90_000);
  assert.ok(monitor.recorder.overflowed > 0);
  let sum = 0;
  for (const s of routes.values()) sum += s.requests;
  assert.equal(sum, total);
  mw.close();
});
