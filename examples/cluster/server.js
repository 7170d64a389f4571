'use strict';
// leakwatch under node:cluster. Each worker records its own routes on a prom-client registry; the
// primary answers Prometheus with the series of all workers combined by prom-client's
// AggregatorRegistry, each by the aggregator leakwatch set on it (sum, average, min or max: see
// the README's table). Scrape the primary, not the workers: the shared HTTP port hands a scrape to
// one worker at random, which would show a different process's figures each time.
//
//   WORKERS=2 PORT=3000 METRICS_PORT=9464 node examples/cluster/server.js
//   curl http://127.0.0.1:9464/metrics
//
// PORT=0 / METRICS_PORT=0 pick free ports. Once every worker listens, the primary prints one JSON
// line: {"event":"listening","port":…,"metricsPort":…,"workers":[pids]}.
const cluster = require('node:cluster');
const http = require('node:http');
const os = require('node:os');
const { randomBytes } = require('node:crypto');
const client = require('prom-client');

// prom-client only answers the primary's requests in a worker once an AggregatorRegistry exists
// there too, so this line runs in every process.
const aggregator = new client.AggregatorRegistry();
const HOST = process.env.HOST || '127.0.0.1';

if (cluster.isPrimary) {
  const workers = Math.max(1, Number(process.env.WORKERS || (os.availableParallelism ? os.availableParallelism() : os.cpus().length)));
  const listening = new Map();
  let stopping = false;

  const metricsServer = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url || '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; scrape /metrics\n');
      return;
    }
    aggregator.clusterMetrics().then((text) => {
      res.writeHead(200, { 'content-type': aggregator.contentType }).end(text);
    }, (err) => {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`aggregation failed: ${err.message}\n`);
    });
  });

  cluster.on('message', (worker, msg) => {
    if (!msg || msg.type !== 'leakwatch-example:listening') return;
    listening.set(worker.id, { pid: worker.process.pid, port: msg.port });
    if (listening.size !== workers) return;
    const port = msg.port;
    metricsServer.listen(process.env.METRICS_PORT === undefined ? 9464 : Number(process.env.METRICS_PORT), HOST, () => {
      const line = { event: 'listening', port, metricsPort: metricsServer.address().port, workers: [...listening.values()].map((w) => w.pid) };
      started = true;
      console.log(JSON.stringify(line));
    });
  });
  let started = false;
  cluster.on('exit', (worker, code, signal) => {
    listening.delete(worker.id);
    if (stopping) return;
    console.error(`worker ${worker.process.pid} exited (${signal || code})`);
    // A worker that dies before the cluster is up (a port in use, a crash at start) stops it all.
    if (!started) { process.exitCode = 1; stop(); }
  });

  const stop = () => {
    stopping = true;
    metricsServer.close();
    for (const w of Object.values(cluster.workers)) w.process.kill('SIGTERM');
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  for (let i = 0; i < workers; i++) cluster.fork();
} else {
  const express = require('express');
  const { leakwatch } = require('leakwatch/express');

  // The registry the primary aggregates. Passing prom-client's default `client.register` works
  // too (it is aggregated by default); a dedicated one keeps the example explicit.
  const registry = new client.Registry();
  client.AggregatorRegistry.setRegistries(registry);

  const app = express();
  const lw = leakwatch({ registry, notice: false });
  app.use(lw);
  const kept = [];
  app.get('/hello/:name', (req, res) => res.json({ hello: req.params.name }));
  // Keeps 1 KB of flat string per request: a leak of known size.
  app.get('/leak', (_req, res) => { kept.push(randomBytes(512).toString('hex')); res.json({ kept: kept.length }); });
  app.get('/whoami', (_req, res) => res.json({ pid: process.pid, worker: cluster.worker.id }));

  const server = app.listen(process.env.PORT === undefined ? 3000 : Number(process.env.PORT), HOST, (err) => {
    // Express 5 hands a listen error to this callback.
    if (err) { console.error(`worker ${process.pid} cannot listen: ${err.message}`); process.exit(1); }
    process.send({ type: 'leakwatch-example:listening', port: server.address().port });
  });
  // Workers follow the primary: if it goes away, so do they.
  process.once('disconnect', () => process.exit(0));
  process.once('SIGTERM', () => {
    lw.close();
    server.closeAllConnections();
    server.close(() => process.exit(0));
  });
}
