import type { IncomingMessage, ServerResponse } from 'node:http';
import { LeakMonitor } from '../core/monitor';
import { UNMATCHED } from '../core/recorder';
import type { RequestState } from '../core/recorder';
import type { LeakwatchOptions } from '../core/types';
import { expressTemplate } from './template';
import { announce } from '../core/notice';
import { NOT_TRIED } from '../core/attribution';

export type { LeakwatchOptions } from '../core/types';

interface ExpressReq extends IncomingMessage {
  originalUrl?: string;
  baseUrl?: string;
  route?: { path?: unknown };
  app?: { _router?: unknown; router?: unknown; get?: (k: string) => unknown };
  ip?: string;
  body?: unknown;
  _body?: boolean;
}

interface Pending {
  state: RequestState;
  req: ExpressReq;
  mountPath: string;
  router: unknown;
}

/** The middleware Express calls, with the monitor attached for tests and custom wiring. */
export interface LeakwatchMiddleware {
  (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void): void;
  /** The monitor behind this middleware: its recorder, gate and features. */
  monitor: LeakMonitor;
  /** Stops every timer and inspector session leakwatch started. */
  close(): void;
}

function routerOf(app: ExpressReq['app']): unknown {
  if (!app) return undefined;
  // Express 5 exposes `app.router`; Express 4 keeps it on `_router` (and throws on `app.router`).
  try {
    const r5 = (app as { router?: unknown }).router;
    if (r5 && typeof r5 === 'function' || (r5 && typeof r5 === 'object')) return r5;
  } catch { /* Express 4 getter throws */ }
  return app._router;
}

/**
 * Express middleware: records every request per route template and serves the dashboard and the
 * JSON API under `options.path` (default `/__leaks`). Mount it first, before your routes.
 * Works with Express 4 and 5.
 *
 * @example
 * ```js
 * const express = require('express');
 * const { leakwatch } = require('leakwatch/express');
 * const app = express();
 * app.use(leakwatch({ path: '/__leaks' }));
 * app.get('/users/:id', (req, res) => res.json({ id: req.params.id }));
 * app.listen(3000); // then open http://localhost:3000/__leaks
 * ```
 */
export function leakwatch(options?: LeakwatchOptions): LeakwatchMiddleware {
  const monitor = new LeakMonitor(options);
  // Per-request state in a WeakMap keyed by the response. Not a property on the response: Express
  // gives every `res` a fresh prototype, so adding a property to it is a map transition on every
  // request (callgrind: a symbol-keyed slot cost +27k instructions per request over this WeakMap).
  const pending = new WeakMap<ServerResponse, Pending>();
  // One app almost always: its router is looked up once, not per request (a getter and a try).
  let lastApp: unknown;
  let lastRouter: unknown;
  const routerFor = (app: ExpressReq['app']): unknown => {
    if (app !== lastApp) { lastRouter = routerOf(app); lastApp = app; }
    return lastRouter;
  };

  // One shared listener on the response's 'close', which an http.Server emits once per response,
  // after 'finish' or alone when the connection went away first (light-my-request too). A second
  // listener on 'finish', where Node keeps its own, would turn that event's single listener into
  // an array on every request. No closure, AsyncResource or socket listener is made per request.
  function onResponseDone(this: ServerResponse): void {
    const res = this;
    const p = pending.get(res);
    if (p === undefined) return;
    pending.delete(res);
    try {
      const req = p.req;
      const template = expressTemplate(req, p.router, p.mountPath);
      const aborted = !res.writableEnded;
      // No holdLast here (see LeakMonitor.holdsLast): holding Express's req and res cut dev mode's
      // added CPU only from +106% to +86% per request, and made the probe misread a route in 2 of
      // 20 Node 24 runs of the Express probe tests.
      const stats = monitor.finish(p.state, req.method ?? 'GET', template ?? UNMATCHED, res.statusCode, aborted, req, req.body);
      // Once per route: put the sampling profiler's trampoline in front of its handlers.
      if (stats !== undefined && stats.attributionId === NOT_TRIED && monitor.attribution !== undefined) {
        monitor.attribution.wrapExpressRoute(stats, req.route, req.method);
      }
    } catch (e) {
      monitor.fault(e);
    }
  }

  function record(req: ExpressReq, res: ServerResponse, next: (err?: unknown) => void): void {
    const state = monitor.start();
    if (state !== undefined) {
      try {
        pending.set(res, { state, req, mountPath: req.baseUrl ?? '', router: routerFor(req.app) });
        res.on('close', onResponseDone);
        // A response driven outside an http.Server (a test's own socket) may emit 'finish' only.
        if ((req.socket as { server?: unknown } | null)?.server === undefined) res.on('finish', onResponseDone);
      } catch (e) {
        monitor.recorder.abandon();
        monitor.fault(e);
      }
    }
    next();
  }

  const middleware = function leakwatchMiddleware(req: ExpressReq, res: ServerResponse, next: (err?: unknown) => void): void {
    if (!monitor.options.enabled) { next(); return; }
    let own = false;
    try { own = monitor.isOwnPath(req.url); } catch (e) { monitor.fault(e); }
    if (own) {
      const saved = req.url;
      void monitor.handle(req, res, { clientIp: req.ip, body: req._body ? req.body : undefined, base: req.baseUrl ?? '' })
        .finally(() => { req.url = saved; });
      return;
    }
    // Probe replays are sent only while the prober holds the gate: no header lookup otherwise.
    if (monitor.gate.closed && monitor.isProbeRequest(req)) { next(); return; }
    const wait = monitor.gate.admit();
    if (wait === undefined) { record(req, res, next); return; }
    wait.then(() => record(req, res, next), () => record(req, res, next));
  } as LeakwatchMiddleware;
  middleware.monitor = monitor;
  middleware.close = () => monitor.close();
  if (monitor.options.enabled) announce(monitor, 'express');
  return middleware;
}

export default leakwatch;
