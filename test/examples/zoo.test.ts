import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import http from 'node:http';
import express from 'express';
import Fastify from 'fastify';
import { repoRoot, get, listen, close } from '../helpers';

// The zoo is plain CommonJS outside src/, shared with the benchmark and the demo.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const zoo = require(path.join(repoRoot, 'examples', 'zoo', 'index.js'));

const names: string[] = zoo.scenarios.map((s: { name: string }) => s.name);

test('the zoo has the leaks and controls the detection work needs, with a truth each', () => {
  for (const n of ['global-var', 'array-push', 'map-cache', 'interval', 'listener', 'buffer', 'every-10th', 'pending-promise',
    'lru', 'lazy-init', 'transient', 'grow-shrink', 'memo', 'hello']) assert.ok(names.includes(n), n);
  for (const s of zoo.scenarios) {
    assert.equal(s.method, 'GET');
    assert.match(s.path, /^\/zoo\//);
    assert.ok(s.kind === 'leak' ? s.truthBytesPerRequest + s.truthExternalBytesPerRequest > 0 : s.truthBytesPerRequest === 0, s.name);
  }
  assert.equal(zoo.perlIncrement('FooA'), 'FooB');
  assert.equal(zoo.perlIncrement('FooZ'), 'FopA');
  assert.equal(zoo.perlIncrement('Zz'), 'AAa');
});

async function hitAll(port: number): Promise<void> {
  const rng = zoo.mulberry32(3);
  for (const s of zoo.scenarios) {
    const url = zoo.sample(s, rng);
    const r = await get(port, url);
    assert.equal(r.status, 200, `${s.name} ${url}: ${r.body}`);
    assert.equal(typeof r.json(), 'object');
  }
}

test('every zoo scenario answers 200 with JSON on Express 5', async (t) => {
  process.on('warning', () => { /* the listener leak makes Node warn: expected */ });
  const app = express();
  zoo.mountExpress(app);
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(() => { zoo.reset(); return close(server); });
  await hitAll(port);
  const hello = await get(port, '/zoo/hello/ada');
  assert.deepEqual(hello.json(), { hello: 'ada' });
});

test('every zoo scenario answers 200 with JSON on Fastify 5', async (t) => {
  const app = Fastify();
  zoo.mountFastify(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const port = (app.server.address() as { port: number }).port;
  t.after(() => { zoo.reset(); return app.close(); });
  await hitAll(port);
  const memo = await get(port, '/zoo/memo?n=3');
  assert.equal(memo.json().n, 3);
});
