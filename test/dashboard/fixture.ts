import http from 'node:http';
import { EventEmitter } from 'node:events';
import { createMonitor, type LeakMonitor } from '../../src/core/monitor';
import { listen, close } from '../helpers';

/**
 * A plain-http app that records each request under its raw path, so that a URL such as
 * `/<img src=x onerror=alert(1)>` becomes a route name (attacker-controlled text on the pages).
 * `/listen` adds a listener per request to a long-lived emitter (Node's MaxListenersExceeded
 * warning); `/global` creates the seed's FooA, FooB… globals.
 */
export interface Fixture { port: number; monitor: LeakMonitor; server: http.Server; close(): Promise<void> }

export async function startFixture(): Promise<Fixture> {
  const monitor = createMonitor({ notice: false, sampleEvery: 1 });
  const bus = new EventEmitter();
  let seq = 0;
  const kept: string[] = [];
  const server = http.createServer((req, res) => {
    if (monitor.isOwnPath(req.url)) { void monitor.handle(req, res); return; }
    const state = monitor.start();
    const url = req.url ?? '/';
    let pathname = url.split('?')[0];
    try { pathname = decodeURIComponent(pathname); } catch { /* keep raw */ }
    res.on('finish', () => monitor.finish(state, req.method ?? 'GET', pathname, res.statusCode, false, req));
    if (pathname === '/listen') {
      bus.on('tick', () => undefined);
    } else if (pathname === '/global') {
      (globalThis as Record<string, unknown>)[`FooLeak${String.fromCharCode(65 + (seq++ % 26))}`] = 1;
    } else if (pathname === '/keep') {
      kept.push(String(Math.random()).repeat(20));
    }
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ ok: true }));
  });
  const port = await listen(server);
  return {
    port, monitor, server,
    async close() {
      monitor.close();
      await close(server);
      bus.removeAllListeners();
      for (let i = 0; i < 26; i++) delete (globalThis as Record<string, unknown>)[`FooLeak${String.fromCharCode(65 + i)}`];
    },
  };
}

export const XSS_PATH = '/<img src=x onerror=alert(1)>';
export const XSS_URL = '/%3Cimg%20src=x%20onerror=alert(1)%3E';
