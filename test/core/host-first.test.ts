import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import Fastify from 'fastify';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import { get, listen, close } from '../helpers';

function quietLogger() {
  const warnings: string[] = [];
  return { warnings, logger: { warn: (m: string) => warnings.push(m), info: () => {} } };
}

test('regression: a recorder that throws still lets the Express app answer normally, and the fault is logged once', async () => {
  const express = require('express');
  const { warnings, logger } = quietLogger();
  const app = express();
  const mw = leakwatch({ logger });
  app.use(mw);
  app.get('/hello/:name', (req: any, res: any) => res.json({ hi: req.params.name }));
  const boom = () => { throw new Error('injected recorder fault'); };
  mw.monitor.recorder.start = boom as any;
  const server = http.createServer(app);
  const port = await listen(server);
  try {
    for (let i = 0; i < 3; i++) {
      const r = await get(port, '/hello/ann');
      assert.equal(r.status, 200);
      assert.equal(r.body, '{"hi":"ann"}');
    }
    // Now the end of the request fails instead of its start.
    delete (mw.monitor.recorder as any).start;
    mw.monitor.recorder.finish = boom as any;
    const r = await get(port, '/hello/bo');
    assert.equal(r.body, '{"hi":"bo"}');
    assert.equal(warnings.length, 1);
    assert.match(warnings[0], /injected recorder fault/);
    assert.ok(mw.monitor.faults >= 4);
  } finally {
    mw.close();
    await close(server);
  }
});

test('regression: a recorder that throws still lets the Fastify app answer normally', async () => {
  const { warnings, logger } = quietLogger();
  const app = Fastify();
  await app.register(fastifyLeakwatch, { logger });
  app.get('/hello/:name', async (req: any) => ({ hi: req.params.name }));
  await app.ready();
  app.leakwatch.recorder.finish = (() => { throw new Error('injected'); }) as any;
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as any).port;
  try {
    const r = await get(port, '/hello/cy');
    assert.equal(r.status, 200);
    assert.equal(r.body, '{"hi":"cy"}');
    assert.equal(warnings.length, 1);
  } finally {
    await app.close();
  }
});

test('disabled: nothing is mounted and nothing recorded', async () => {
  const express = require('express');
  const app = express();
  const mw = leakwatch({ enabled: false });
  app.use(mw);
  app.use((req: any, res: any) => res.status(404).json({ app: 'own 404', url: req.url }));
  const server = http.createServer(app);
  const port = await listen(server);
  try {
    const r = await get(port, '/__leaks/api/routes');
    assert.equal(r.status, 404);
    assert.deepEqual(r.json(), { app: 'own 404', url: '/__leaks/api/routes' });
    assert.equal(mw.monitor.recorder.totalRequests, 0);
  } finally {
    mw.close();
    await close(server);
  }
});
