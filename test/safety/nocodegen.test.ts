import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import path from 'node:path';

// leakwatch compiles one trampoline per route for the sampling heap profiler (new Function). A
// host started with --disallow-code-generation-from-strings forbids that: the app must run as
// usual, the route simply goes unattributed, and the checkpoint regression still judges it.
const script = `
const http = require('node:http');
const express = require(${JSON.stringify(require.resolve('express'))});
const { leakwatch } = require(${JSON.stringify(path.join(__dirname, '..', '..', 'src', 'express', 'index.js'))});
const app = express();
const mw = leakwatch({ notice: false, mode: 'dev', autoProbe: false });
app.use(mw);
app.get('/users/:id', (req, res) => res.json({ id: req.params.id }));
const server = app.listen(0, '127.0.0.1', async () => {
  const port = server.address().port;
  const bodies = [];
  for (let i = 0; i < 3; i++) {
    bodies.push(await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port, path: '/users/' + i }, (r) => {
      let b = ''; r.on('data', (c) => { b += c; }); r.on('end', () => resolve(r.statusCode + ' ' + b));
    }).on('error', reject)));
  }
  const fetchOne = (p) => new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port, path: p }, (r) => {
    let b = ''; r.on('data', (c) => { b += c; }); r.on('end', () => resolve({ status: r.statusCode, type: r.headers['content-type'], body: b }));
  }).on('error', reject));
  const page = await fetchOne('/__leaks');
  const api = await fetchOne('/__leaks/api/routes');
  const stats = mw.monitor.route('GET', '/users/:id');
  const ok = await mw.monitor.features.detector.checkpoint();
  process.stdout.write(JSON.stringify({ page, api: { status: api.status, routes: JSON.parse(api.body).routes.length }, bodies, attributionId: stats.attributionId, requests: stats.requests, checkpoint: ok, faults: mw.monitor.faults }));
  mw.close();
  server.close();
});
`;

test('with --disallow-code-generation-from-strings leakwatch loads, the app answers as usual, routes go unattributed and the dashboard says why it cannot render (regression: ejs crashed require)', async () => {
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, ['--disallow-code-generation-from-strings', '-e', script], { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
  });
  const r = JSON.parse(out) as { page: { status: number; body: string }; api: { status: number; routes: number }; bodies: string[]; attributionId: number; requests: number; checkpoint: boolean; faults: number };
  assert.deepEqual(r.bodies, ['200 {"id":"0"}', '200 {"id":"1"}', '200 {"id":"2"}']);
  assert.equal(r.requests, 3);
  assert.equal(r.attributionId, -2, 'no trampoline could be compiled');
  assert.equal(r.checkpoint, true, 'checkpoints still run');
  assert.equal(r.faults, 0, 'nothing was logged as a leakwatch fault');
  // The dashboard's EJS views cannot compile here: a clear answer instead of a crash, and the JSON API works.
  assert.equal(r.page.status, 503);
  assert.match(r.page.body, /code generation|EJS/);
  assert.equal(r.api.status, 200);
  assert.equal(r.api.routes, 1);
});
