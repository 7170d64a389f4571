import assert from 'node:assert/strict';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { leakwatch } from '../src/express/index';

/** The repository root (tests run from dist/test/...). */
export const repoRoot = path.resolve(__dirname, '..', '..');

export interface Reply { status: number; headers: http.IncomingHttpHeaders; body: string; json(): any }

/** One HTTP request on loopback with a fresh connection. */
export function request(port: number, method: string, urlPath: string, opts: { body?: string | Buffer; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

export const get = (port: number, urlPath: string, headers?: Record<string, string>) => request(port, 'GET', urlPath, { headers });

export function postJson(port: number, urlPath: string, body: unknown, headers: Record<string, string> = {}): Promise<Reply> {
  return request(port, 'POST', urlPath, { body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } });
}

/** Starts an http.Server (an Express app's `listen` result works too) on 127.0.0.1:0. */
export async function listen(server: http.Server): Promise<number> {
  if (!server.listening) await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

export function close(server: http.Server): Promise<void> {
  server.closeAllConnections?.();
  return new Promise((r) => server.close(() => r()));
}

/** mulberry32: a tiny seeded PRNG, so seeded traffic and synthetic series replay identically. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `cond` every 10 ms; fails the test, naming `what`, after `ms`. */
export async function until(what: string, cond: () => boolean, ms = 3000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/**
 * Flat out on `conns` keep-alive connections to `path` until `stop` returns true or `ms` pass;
 * the number of responses received.
 */
export async function flood(port: number, ms: number, conns: number, stop: () => boolean, path = '/hit'): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: conns });
  const end = Date.now() + ms;
  let done = 0;
  const one = (): Promise<void> => new Promise((resolve, reject) => {
    http.get({ port, host: '127.0.0.1', path, agent }, (res) => { res.resume(); res.on('end', () => { done++; resolve(); }); }).on('error', reject);
  });
  try {
    await Promise.all(Array.from({ length: conns }, async () => { while (Date.now() < end && !stop()) await one(); }));
  } finally {
    agent.destroy();
  }
  return done;
}

/** An Express app with leakwatch in dev mode (plus `options`) and one route, `GET /hit`; closed after the test. */
export async function serveExpressDev(t: { after(fn: () => Promise<void>): void }, options: Record<string, unknown>): Promise<{ port: number; mw: ReturnType<typeof leakwatch>; app: express.Express }> {
  const app = express();
  const mw = leakwatch({ notice: false, mode: 'dev', autoProbe: false, ...options });
  app.use(mw);
  app.get('/hit', (_req, res) => { res.json({ ok: true }); });
  const server = http.createServer(app);
  const port = await listen(server);
  t.after(async () => { mw.close(); await close(server); });
  return { port, mw, app };
}
