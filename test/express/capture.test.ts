import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { leakwatch } from '../../src/express/index';
import { postJson, get, listen, close } from '../helpers';

type ExpressFactory = any;

const flavours: Array<[string, ExpressFactory]> = [
  ['Express 5', require('express')],
  ['Express 4', require('express4')],
];

// The Express adapter reads req and res through keyed loads, req.app through req's prototype and
// the body only when a replay sample is kept (bench:overhead, core/prop.ts). These guard that what
// it records from them is still right: the sample's method, URL, headers and parsed body, the
// status, the route's app inside a sub-app, and aborted responses.
for (const [name, express] of flavours) {
  for (const mode of ['dev', 'production'] as const) {
    test(`${name} (${mode}): the replay sample keeps the parsed body, URL and headers; status and sub-app routes are recorded`, async () => {
      const app = express();
      const mw = leakwatch({ notice: false, mode, enabled: true, autoProbe: false, sampleEvery: 4 });
      app.use(mw);
      app.use(express.json());
      app.post('/echo/:id', (req: any, res: any) => res.status(201).json({ got: req.body }));
      app.get('/fail', (_req: any, res: any) => res.status(503).json({ down: true }));
      const sub = express();
      sub.get('/items/:item', (req: any, res: any) => res.json({ item: req.params.item }));
      app.use('/shop', sub);
      const server: http.Server = http.createServer(app);
      const port = await listen(server);
      try {
        for (let i = 0; i < 7; i++) {
          const r = await postJson(port, `/echo/${i}?q=${i}`, { n: i, tag: 'x' }, { 'x-trace': `t${i}` });
          assert.equal(r.status, 201);
          assert.deepEqual(r.json(), { got: { n: i, tag: 'x' } });
        }
        assert.equal((await get(port, '/fail')).status, 503);
        assert.equal((await get(port, '/shop/items/7')).status, 200);
        const echo = mw.monitor.route('POST', '/echo/:id')!;
        assert.ok(echo, 'POST /echo/:id recorded');
        assert.equal(echo.requests, 7);
        const last = echo.lastRequest!;
        assert.ok(last, 'a replay sample was kept');
        assert.equal(last.method, 'POST');
        // Production mode keeps samples from sampled requests only: the 4th of 7 here (sampleEvery 4).
        const i = mode === 'dev' ? 6 : 3;
        assert.equal(last.url, `/echo/${i}?q=${i}`);
        assert.equal(last.headers['x-trace'], `t${i}`);
        assert.deepEqual(last.body, { n: i, tag: 'x' });
        assert.equal(mw.monitor.route('GET', '/fail')!.serverErrors, 1);
        assert.equal(mw.monitor.route('GET', '/fail')!.aborted, 0);
        assert.equal(mw.monitor.route('GET', '/shop/items/:item')?.requests, 1, 'sub-app route recorded under its mount');
      } finally {
        mw.close();
        await close(server);
      }
    });
  }
}
