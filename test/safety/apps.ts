import http from 'node:http';
import net from 'node:net';
import { PassThrough } from 'node:stream';
import Fastify from 'fastify';
import { leakwatch } from '../../src/express/index';
import { fastifyLeakwatch } from '../../src/fastify/index';
import type { LeakMonitor } from '../../src/core/monitor';
import type { LeakwatchOptions } from '../../src/core/types';
import { listen, close } from '../helpers';

export type Flavour = 'Express 4' | 'Express 5' | 'Fastify 5';
export const FLAVOURS: Flavour[] = ['Express 4', 'Express 5', 'Fastify 5'];

export interface AppHandle {
  flavour: Flavour;
  port: number;
  /** Undefined when the app runs without leakwatch (the byte-identical baseline). */
  monitor: LeakMonitor | undefined;
  close(): Promise<void>;
}

export interface AppOptions {
  /** Mount leakwatch at all (false gives the bare baseline app). Default true. */
  leakwatch?: boolean;
  /** The framework's trust-proxy setting (Express `trust proxy`, Fastify `trustProxy`). */
  trustProxy?: boolean;
}

/** Collects what leakwatch logs, so tests can count faults and read the startup notice. */
export function captureLogger(): { warnings: string[]; infos: string[]; logger: { warn(m: string): void; info(m: string): void } } {
  const warnings: string[] = [];
  const infos: string[] = [];
  return { warnings, infos, logger: { warn: (m: string) => { warnings.push(m); }, info: (m: string) => { infos.push(m); } } };
}

// Deterministic bodies: the byte-identical comparison needs every response to be reproducible.
const STREAM_CHUNKS = 5;
const DRIP_CHUNKS = 10;
function chunk(i: number): string {
  return `chunk-${i}-` + 'abcdefghij'.repeat(20) + '\n';
}

/**
 * The host app every safety test drives, written once per framework with the same routes:
 * - `GET /hello/:name` JSON; `GET /text` plain text with a custom header;
 * - `GET /throw` a handler that throws (the framework's own 500);
 * - `GET /stream` a chunked response written over a few ticks;
 * - `GET /slow` answers after 300 ms (for clients that go away first);
 * - `GET /drip` streams a chunk every 40 ms for 400 ms (for clients that go away mid-response);
 * - `POST /echo` echoes a JSON body;
 * - anything else: the framework's 404 (Express: a JSON 404 of the app's own).
 */
export async function startApp(flavour: Flavour, lw: LeakwatchOptions = {}, opts: AppOptions = {}): Promise<AppHandle> {
  const withLw = opts.leakwatch !== false;
  if (flavour === 'Fastify 5') {
    const app = Fastify({ trustProxy: opts.trustProxy === true });
    if (withLw) await app.register(fastifyLeakwatch, lw);
    app.get('/hello/:name', async (req: any) => ({ hi: req.params.name }));
    app.get('/text', async (_req, reply) => { reply.header('x-app', 'yes').type('text/plain'); return 'plain text body'; });
    app.get('/throw', async () => { throw new Error('handler failed'); });
    app.get('/stream', (_req, reply) => {
      const s = new PassThrough();
      reply.type('text/plain').send(s);
      let i = 0;
      const tick = () => { if (i < STREAM_CHUNKS) { s.write(chunk(i++)); setImmediate(tick); } else s.end(); };
      setImmediate(tick);
    });
    app.get('/slow', async () => { await new Promise((r) => setTimeout(r, 300)); return { slow: true }; });
    app.get('/drip', (_req, reply) => {
      const s = new PassThrough();
      reply.type('text/plain').send(s);
      let i = 0;
      const t = setInterval(() => { if (i < DRIP_CHUNKS && !s.destroyed) s.write(chunk(i++)); else { clearInterval(t); s.end(); } }, 40);
    });
    app.post('/echo', async (req: any) => ({ echo: req.body }));
    await app.listen({ port: 0, host: '127.0.0.1' });
    const port = (app.server.address() as net.AddressInfo).port;
    return { flavour, port, monitor: withLw ? app.leakwatch : undefined, close: async () => { await app.close(); } };
  }
  // eslint-disable-next-line @typescript-eslint/no-var-requires
  const express = flavour === 'Express 4' ? require('express4') : require('express');
  const app = express();
  if (opts.trustProxy) app.set('trust proxy', true);
  app.set('etag', false);
  app.set('x-powered-by', false);
  const mw = withLw ? leakwatch(lw) : undefined;
  if (mw) app.use(mw);
  app.get('/hello/:name', (req: any, res: any) => res.json({ hi: req.params.name }));
  app.get('/text', (_req: any, res: any) => { res.set('x-app', 'yes').type('text/plain').send('plain text body'); });
  app.get('/throw', () => { throw new Error('handler failed'); });
  app.get('/stream', (_req: any, res: any) => {
    res.type('text/plain');
    let i = 0;
    const tick = () => { if (i < STREAM_CHUNKS) { res.write(chunk(i++)); setImmediate(tick); } else res.end(); };
    setImmediate(tick);
  });
  app.get('/slow', (_req: any, res: any) => { setTimeout(() => { if (!res.destroyed) res.json({ slow: true }); }, 300); });
  app.get('/drip', (_req: any, res: any) => {
    res.type('text/plain');
    let i = 0;
    const t = setInterval(() => { if (i < DRIP_CHUNKS && !res.destroyed) res.write(chunk(i++)); else { clearInterval(t); res.end(); } }, 40);
  });
  app.post('/echo', express.json(), (req: any, res: any) => res.json({ echo: req.body }));
  app.use((req: any, res: any) => res.status(404).json({ app: 'own 404', url: req.url }));
  // Express's default error handler prints the stack in dev; keep the 500 reproducible.
  app.use((err: any, _req: any, res: any, _next: any) => res.status(500).json({ app: 'own 500', message: String(err?.message) }));
  const server = http.createServer(app);
  const port = await listen(server);
  return {
    flavour, port, monitor: mw?.monitor,
    close: async () => { mw?.close(); await close(server); },
  };
}

/** Raw bytes over one socket: `payload` is written at once, the answer read until `until` holds or the socket ends. */
export function rawExchange(port: number, payload: string | Buffer, until: (received: string) => boolean, timeoutMs = 5000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let got = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no complete answer within ${timeoutMs} ms; got ${JSON.stringify(got.slice(0, 500))}`)); }, timeoutMs);
    const finish = () => { clearTimeout(timer); socket.destroy(); resolve(got); };
    socket.on('data', (d) => { got += d.toString('latin1'); if (until(got)) finish(); });
    socket.on('end', finish);
    socket.on('error', (e) => { clearTimeout(timer); if (got !== '') resolve(got); else reject(e); });
    socket.write(payload);
  });
}

/** Splits a raw HTTP/1.1 byte stream into responses (Content-Length or chunked framing). */
export function splitResponses(raw: string): Array<{ head: string; status: number; body: string }> {
  const out: Array<{ head: string; status: number; body: string }> = [];
  let rest = raw;
  while (rest.length > 0) {
    const end = rest.indexOf('\r\n\r\n');
    if (end < 0) break;
    const head = rest.slice(0, end);
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
    rest = rest.slice(end + 4);
    const len = /\r\ncontent-length: *(\d+)/i.exec(head);
    let body = '';
    if (len) {
      body = rest.slice(0, Number(len[1]));
      rest = rest.slice(Number(len[1]));
    } else if (/\r\ntransfer-encoding: *chunked/i.test(head)) {
      for (;;) {
        const nl = rest.indexOf('\r\n');
        if (nl < 0) { rest = ''; break; }
        const size = parseInt(rest.slice(0, nl), 16);
        rest = rest.slice(nl + 2);
        if (!(size > 0)) { rest = rest.slice(2); break; }
        body += rest.slice(0, size);
        rest = rest.slice(size + 2);
      }
    }
    out.push({ head, status, body });
  }
  return out;
}

/** True once `raw` holds `n` complete responses. */
export function hasResponses(n: number): (raw: string) => boolean {
  return (raw) => {
    const parts = splitResponses(raw);
    if (parts.length < n) return false;
    // The last one is complete if its framing was satisfied: re-serialising is overkill, so check
    // the chunked terminator or the declared length.
    const last = parts[n - 1];
    const len = /\r\ncontent-length: *(\d+)/i.exec(last.head);
    if (len) return Buffer.byteLength(last.body, 'latin1') >= Number(len[1]);
    return /\r\ntransfer-encoding: *chunked/i.test(last.head) ? raw.endsWith('0\r\n\r\n') : true;
  };
}
