import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { leakwatch } from '../../src/express/index';
import { get, listen, close } from '../helpers';

type ExpressFactory = any;

const flavours: Array<[string, ExpressFactory]> = [
  ['Express 5', require('express')],
  ['Express 4', require('express4')],
];

/** An app with leakwatch (production mode) at its root and one route, listening on loopback. */
async function helloApp(express: ExpressFactory): Promise<{ app: any; mw: ReturnType<typeof leakwatch>; server: http.Server; port: number }> {
  const app = express();
  const mw = leakwatch({ notice: false, mode: 'production', enabled: true });
  app.use(mw);
  app.get('/hello/:name', (req: any, res: any) => res.json({ hello: req.params.name }));
  const server = http.createServer(app);
  return { app, mw, server, port: await listen(server) };
}

function stackOf(app: any): any[] {
  return (app._router ?? app.router).stack;
}

// The middleware moves its per-request work in front of the app (src/express/lift.ts) on the first
// request. These guard what must not change when it does: every request counted once, the first
// included; the dashboard still served at the middleware's place in the router, behind the app's
// own middleware mounted before it; the app's responses; and close() putting both pieces back.
for (const [name, express] of flavours) {
  test(`${name}: lifted in front of the app, every request is counted once and the dashboard stays behind earlier middleware`, async () => {
    const app = express();
    const original = app.handle;
    // An auth check mounted before leakwatch: it must still guard the dashboard once lifted.
    app.use((req: any, res: any, next: any) => {
      if (req.url.startsWith('/__leaks') && req.headers['x-key'] !== 'k') { res.status(401).json({ error: 'key' }); return; }
      next();
    });
    const mw = leakwatch({ notice: false, mode: 'production', enabled: true });
    app.use(mw);
    app.get('/hello/:name', (req: any, res: any) => res.json({ hello: req.params.name }));
    const router = express.Router();
    router.get('/items/:id', (req: any, res: any) => res.status(202).json({ id: req.params.id }));
    app.use('/api', router);
    const layer = stackOf(app).find((l: any) => l.handle === mw);
    const server = http.createServer(app);
    const port = await listen(server);
    try {
      assert.equal(app.handle, original, 'nothing changes before the first request');
      const first = await get(port, '/hello/a');
      assert.deepEqual(first.json(), { hello: 'a' });
      assert.notEqual(app.handle, original, 'the first request lifts the middleware');
      assert.ok(Object.prototype.hasOwnProperty.call(layer, 'match'), "the middleware's layer now matches its own path only");
      for (let i = 0; i < 9; i++) {
        const r = await get(port, `/hello/n${i}`);
        assert.equal(r.status, 200);
        assert.deepEqual(r.json(), { hello: `n${i}` });
      }
      for (let i = 0; i < 4; i++) assert.equal((await get(port, `/api/items/${i}`)).status, 202);
      assert.equal((await get(port, '/nowhere')).status, 404);
      assert.equal(mw.monitor.route('GET', '/hello/:name')?.requests, 10, 'the first request and the nine lifted ones');
      assert.equal(mw.monitor.route('GET', '/api/items/:id')?.requests, 4);
      assert.equal(mw.monitor.recorder.inFlight, 0);

      assert.equal((await get(port, '/__leaks/api/routes')).status, 401, 'the earlier middleware still guards the dashboard');
      const routes = await get(port, '/__leaks/api/routes', { 'x-key': 'k' });
      assert.equal(routes.status, 200);
      const listed = routes.json().routes.map((r: any) => `${r.method} ${r.route} ${r.requests}`).sort();
      assert.ok(listed.includes('GET /hello/:name 10'), listed.join(', '));
      assert.ok(!listed.some((l: string) => l.includes('__leaks')), 'own-path requests are not recorded');

      mw.close();
      assert.equal(app.handle, original, 'close() puts app.handle back');
      assert.ok(!Object.prototype.hasOwnProperty.call(layer, 'match'), "close() puts the layer's match back");
      const after = await get(port, '/hello/z');
      assert.deepEqual(after.json(), { hello: 'z' });
      assert.equal(mw.monitor.route('GET', '/hello/:name')?.requests, 10, 'nothing is recorded after close()');
    } finally {
      mw.close();
      await close(server);
    }
  });

  test(`${name}: not lifted when mounted under a path or inside a Router, and still records there`, async () => {
    const app = express();
    const original = app.handle;
    const under = leakwatch({ notice: false, mode: 'production', enabled: true });
    app.use('/v1', under);
    app.get('/v1/hello', (_req: any, res: any) => res.json({ v: 1 }));
    const router = express.Router();
    const inRouter = leakwatch({ notice: false, mode: 'production', enabled: true });
    router.use(inRouter);
    router.get('/hello', (_req: any, res: any) => res.json({ v: 2 }));
    app.use('/v2', router);
    const outside = express();
    const twice = leakwatch({ notice: false, mode: 'production', enabled: true });
    outside.use(twice);
    outside.use(twice);
    outside.get('/hello', (_req: any, res: any) => res.json({ v: 3 }));
    const server = http.createServer(app);
    const port = await listen(server);
    const server2 = http.createServer(outside);
    const port2 = await listen(server2);
    try {
      for (let i = 0; i < 3; i++) {
        assert.deepEqual((await get(port, '/v1/hello')).json(), { v: 1 });
        assert.deepEqual((await get(port, '/v2/hello')).json(), { v: 2 });
        assert.deepEqual((await get(port2, '/hello')).json(), { v: 3 });
      }
      assert.equal(app.handle, original, 'a middleware below a path or in a Router leaves app.handle alone');
      assert.equal(outside.handle.name, 'handle', 'a middleware mounted twice leaves app.handle alone');
      assert.equal(under.monitor.route('GET', '/v1/hello')?.requests, 3);
      assert.equal(inRouter.monitor.route('GET', '/v2/hello')?.requests, 3);
      // Mounted twice, it is called twice per request, and counts each once (regression: the
      // second call started a request that never finished, so checkpoints waited forever).
      assert.equal(twice.monitor.route('GET', '/hello')?.requests, 3);
      assert.equal(twice.monitor.recorder.inFlight, 0);
    } finally {
      under.close();
      inRouter.close();
      twice.close();
      await close(server);
      await close(server2);
    }
  });

  test(`${name}: close() leaves a wrapper that someone else put over app.handle, and ours then passes straight through`, async () => {
    const { app, mw, server, port } = await helloApp(express);
    try {
      await get(port, '/hello/a');
      const ours = app.handle;
      assert.equal(ours.name, 'leakwatchHandle');
      let seen = 0;
      // Another library wraps app.handle after leakwatch did.
      app.handle = function theirs(this: unknown, ...args: unknown[]) { seen++; return ours.apply(this, args); };
      const theirs = app.handle;
      await get(port, '/hello/b');
      assert.equal(mw.monitor.route('GET', '/hello/:name')?.requests, 2);
      mw.close();
      assert.equal(app.handle, theirs, "close() does not take the other library's wrapper away");
      const r = await get(port, '/hello/c');
      assert.deepEqual(r.json(), { hello: 'c' });
      assert.equal(seen, 2);
      assert.equal(mw.monitor.route('GET', '/hello/:name')?.requests, 2, 'nothing recorded after close()');
      assert.equal(mw.monitor.recorder.inFlight, 0);
    } finally {
      mw.close();
      await close(server);
    }
  });

  test(`${name}: lifted, requests held at the isolation gate are let through in order and recorded`, async () => {
    const { app, mw, server, port } = await helloApp(express);
    try {
      await get(port, '/hello/first');
      assert.equal(app.handle.name, 'leakwatchHandle');
      const token = mw.monitor.gate.close(5_000)!;
      assert.ok(token !== undefined);
      const held = [0, 1, 2].map((i) => get(port, `/hello/h${i}`));
      // The dashboard is never held.
      assert.equal((await get(port, '/__leaks/api/process')).status, 200);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(mw.monitor.route('GET', '/hello/:name')?.requests, 1, 'held requests have not run');
      assert.ok(mw.monitor.gate.queued >= 3, `three requests wait at the gate (${mw.monitor.gate.queued})`);
      mw.monitor.gate.open(token);
      const replies = await Promise.all(held);
      assert.deepEqual(replies.map((r) => r.json().hello), ['h0', 'h1', 'h2']);
      assert.equal(mw.monitor.route('GET', '/hello/:name')?.requests, 4);
      assert.equal(mw.monitor.recorder.inFlight, 0);
    } finally {
      mw.close();
      await close(server);
    }
  });
}
