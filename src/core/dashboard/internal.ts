import type { IncomingMessage, ServerResponse } from 'node:http';
import type { LeakMonitor } from '../monitor';

/** What an endpoint answered when called from inside the process. */
export interface InternalReply { status: number; body: unknown }

/**
 * A response sink with the parts of `ServerResponse` leakwatch's JSON handlers use. It lets a
 * page call another feature's endpoint (the probe) through the router, exactly as a browser
 * would, without knowing that feature's internals.
 */
class Sink {
  statusCode = 200;
  headersSent = false;
  writableEnded = false;
  destroyed = false;
  private chunks: string[] = [];
  private readonly headers: Record<string, unknown> = {};
  private readonly waiters: Array<() => void> = [];
  setHeader(k: string, v: unknown): this { this.headers[k.toLowerCase()] = v; return this; }
  getHeader(k: string): unknown { return this.headers[k.toLowerCase()]; }
  removeHeader(k: string): void { delete this.headers[k.toLowerCase()]; }
  hasHeader(k: string): boolean { return k.toLowerCase() in this.headers; }
  writeHead(status: number, headers?: Record<string, unknown>): this {
    this.statusCode = status;
    if (headers) for (const k of Object.keys(headers)) this.setHeader(k, headers[k]);
    this.headersSent = true;
    return this;
  }
  write(chunk: unknown): boolean { this.headersSent = true; this.chunks.push(String(chunk)); return true; }
  end(chunk?: unknown): this {
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') this.chunks.push(String(chunk));
    this.headersSent = true;
    this.writableEnded = true;
    for (const w of this.waiters.splice(0)) w();
    return this;
  }
  on(): this { return this; }
  once(): this { return this; }
  off(): this { return this; }
  removeListener(): this { return this; }
  emit(): boolean { return false; }
  destroy(): void { this.destroyed = true; this.end(); }
  flushHeaders(): void { this.headersSent = true; }
  ended(): Promise<void> { return this.writableEnded ? Promise.resolve() : new Promise((r) => this.waiters.push(r)); }
  reply(): InternalReply {
    const text = this.chunks.join('');
    let body: unknown = text;
    try { body = text === '' ? null : JSON.parse(text); } catch { /* not JSON */ }
    return { status: this.statusCode, body };
  }
}

/**
 * Calls one of leakwatch's own endpoints from inside the process. Resolves once the endpoint
 * answered, or after `waitMs` with `undefined` if it is still working (a probe runs for seconds).
 *
 * @example
 * ```ts
 * const r = await callInternal(monitor, ctx.req, base, 'GET', '/api/probe', undefined, 1000);
 * r?.body; // { running: false, … }
 * ```
 */
export async function callInternal(monitor: LeakMonitor, req: IncomingMessage, base: string, subpath: string, body: Record<string, unknown> | undefined, waitMs: number): Promise<InternalReply | undefined> {
  const sink = new Sink();
  const res = sink as unknown as ServerResponse;
  // The caller's request supplies method and headers (already authorized, token checked).
  const done = monitor.router.dispatch(req, res, subpath, new URLSearchParams(), body, base)
    .catch((e: unknown) => {
      const status = typeof (e as { status?: unknown }).status === 'number' ? (e as { status: number }).status : 500;
      sink.statusCode = status;
      sink.end(JSON.stringify({ error: e instanceof Error ? e.message : String(e) }));
    });
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => { timer = setTimeout(() => r('timeout'), waitMs); timer.unref(); });
  const first = await Promise.race([sink.ended().then(() => 'ended' as const), timeout]);
  clearTimeout(timer);
  void done;
  return first === 'ended' ? sink.reply() : undefined;
}
