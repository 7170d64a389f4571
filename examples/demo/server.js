'use strict';
// The leakwatch demo: an Express 5 server with the leak zoo mounted, leakwatch in dev mode, and
// its own light background traffic, so that /__leaks shows something real within seconds.
//
//   npm start                 # PORT=3000 by default
//   PORT=4000 DEMO_RPS=0 npm start   # no background traffic: drive it yourself
const http = require('node:http');
const express = require('express');
const { leakwatch } = require('leakwatch/express');
const zoo = require('../zoo');

/** Sends `rps` requests a second to random zoo routes, a few at a time, from this same process. */
function startTraffic(port, rps, seed = 42) {
  const rng = zoo.mulberry32(seed);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 4 });
  let stopped = false;
  // The mix of routes changes every two seconds, as real traffic does. leakwatch attributes
  // retention to routes by how the heap follows each route's share; a fixed mix is ambiguous.
  let weights = [];
  let total = 0;
  let ticks = 0;
  function redraw() {
    weights = zoo.scenarios.map(() => 0.05 + rng() * rng());
    total = weights.reduce((a, b) => a + b, 0);
  }
  function pick() {
    let r = rng() * total;
    for (let i = 0; i < weights.length; i++) { r -= weights[i]; if (r <= 0) return zoo.scenarios[i]; }
    return zoo.scenarios[weights.length - 1];
  }
  redraw();
  const tick = setInterval(() => {
    if (stopped) return;
    if (++ticks % 20 === 0) redraw();
    // Ten ticks a second; a burst of rps/10 requests each.
    const burst = Math.max(1, Math.round(rps / 10));
    for (let i = 0; i < burst; i++) {
      const s = pick();
      const req = http.get({ host: '127.0.0.1', port, path: zoo.sample(s, rng), agent }, (res) => res.resume());
      req.on('error', () => { /* the server may be closing */ });
    }
  }, 100);
  tick.unref();
  return () => { stopped = true; clearInterval(tick); agent.destroy(); };
}

/**
 * Starts the demo. Resolves with `{ server, port, url, close() }`.
 * @param {{ port?: number, host?: string, rps?: number, leakwatch?: object }} [opts]
 */
async function start(opts = {}) {
  const app = express();
  const lw = leakwatch({ notice: false, ...(opts.leakwatch || {}) });
  app.use(lw);
  app.get('/', (_req, res) => {
    const links = zoo.scenarios.map((s) => `<li><a href="${zoo.sample(s, () => 0)}">${s.method} ${s.path}</a> (${s.kind}): ${s.description}</li>`).join('');
    res.type('html').send(`<!doctype html><meta charset="utf-8"><title>leakwatch demo</title><h1>leakwatch demo: the leak zoo</h1><p>Open <a href="/__leaks">/__leaks</a>.</p><ul>${links}</ul>`);
  });
  zoo.mountExpress(app);
  const server = http.createServer(app);
  const host = opts.host || '127.0.0.1';
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port === undefined ? 0 : opts.port, host, resolve);
  });
  const port = server.address().port;
  const rps = opts.rps === undefined ? 200 : opts.rps;
  const stopTraffic = rps > 0 ? startTraffic(port, rps) : () => {};
  const url = `http://${host === '0.0.0.0' ? 'localhost' : host}:${port}`;
  return {
    server,
    port,
    url,
    monitor: lw.monitor,
    async close() {
      stopTraffic();
      lw.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      zoo.reset();
    },
  };
}

module.exports = { start };

if (require.main === module) {
  // MaxListenersExceededWarning is part of the zoo (the listener leak); leakwatch shows it too.
  process.on('warning', (w) => { if (w.name !== 'MaxListenersExceededWarning') console.warn(w); });
  const port = process.env.PORT === undefined ? 3000 : Number(process.env.PORT);
  const rps = process.env.DEMO_RPS === undefined ? 200 : Number(process.env.DEMO_RPS);
  start({ port, rps, host: process.env.HOST || '127.0.0.1' }).then((demo) => {
    console.log(`leakwatch demo: the leak zoo is at ${demo.url}/ with ${rps} background requests/s`);
    console.log(`Open ${demo.url}/__leaks`);
    const stop = () => { demo.close().then(() => process.exit(0)); };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }).catch((e) => {
    console.error(`leakwatch demo could not start: ${e.message}${e.code === 'EADDRINUSE' ? ' (set PORT to another port)' : ''}`);
    process.exit(1);
  });
}
