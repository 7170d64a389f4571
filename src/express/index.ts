import type { IncomingMessage, ServerResponse } from 'node:http';
import { EventEmitter } from 'node:events';
import { LeakMonitor } from '../core/monitor';
import { UNMATCHED } from '../core/recorder';
import type { RequestState } from '../core/recorder';
import type { LeakwatchOptions } from '../core/types';
import { expressTemplate, routerOf } from './template';
import { announce } from '../core/notice';
import { NOT_TRIED } from '../core/attribution';
import { prop } from '../core/prop';
import { QueuedResponses, type WatchedSocket } from '../core/queued';
import { lift, type Handle, type Lifted } from './lift';

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

/**
 * Express gives `req` and `res` a new hidden class on every request, so every named property read
 * from them misses V8's inline caches (see core/prop.ts). The per-request reads below go through
 * `prop()`, or avoid the object altogether.
 */
const addListener = (res: ServerResponse, event: string, fn: (this: ServerResponse) => void): void => {
  // `res.on` is EventEmitter's (ServerResponse overrides none of it); calling it from the
  // prototype skips one such read. A patched EventEmitter.prototype.on is still the one called.
  EventEmitter.prototype.on.call(res, event, fn);
};

/** The app whose middleware stack `req` is in: Express's `req.app` lives on `app.request`, req's prototype. */
function appOf(req: ExpressReq): ExpressReq['app'] {
  const proto = Object.getPrototypeOf(req) as { app?: unknown } | null;
  const app = proto !== null && Object.prototype.hasOwnProperty.call(proto, 'app') ? proto.app : prop(req, 'app');
  return app as ExpressReq['app'];
}

/** Read only when the request is kept as a replay sample (see Recorder.finish). */
const bodyOf = (req: IncomingMessage): unknown => prop(req, 'body');

/**
 * Express middleware: records every request per route template and serves the dashboard and the
 * JSON API under `options.path` (default `/__leaks`). Mount it first, before your routes.
 * Works with Express 4 and 5. Mounted once at an app's root, it moves its per-request work in
 * front of the app on the first request (it wraps `app.handle`; see lift.ts), and `close()`
 * puts that back.
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
  const queued = new QueuedResponses((res) => onResponseDone.call(res as ServerResponse), (res) => pending.has(res as ServerResponse), (e) => monitor.fault(e));
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
      // `finished` is the field behind the `writableEnded` getter, which a keyed read cannot see
      // through without the runtime; the getter serves where the field is missing.
      const ended = prop<boolean | undefined>(res, 'finished');
      const aborted = !(ended ?? prop<boolean>(res, 'writableEnded'));
      // No holdLast here (see LeakMonitor.holdsLast): holding Express's req and res cut dev mode's
      // added CPU only from +106% to +86% per request, and made the probe misread a route in 2 of
      // 20 Node 24 runs of the Express probe tests.
      const stats = monitor.finish(p.state, prop<string | undefined>(req, 'method') ?? 'GET', template ?? UNMATCHED, prop<number>(res, 'statusCode'), aborted, req, undefined, bodyOf);
      // Once per route: put the sampling profiler's trampoline in front of its handlers.
      if (stats !== undefined && stats.attributionId === NOT_TRIED && monitor.attribution !== undefined) {
        monitor.attribution.wrapExpressRoute(stats, req.route, req.method);
      }
    } catch (e) {
      monitor.fault(e);
    }
  }

  /** Starts following one request to its end. `router` and `mountPath` are where its route is looked up. */
  function track(req: ExpressReq, res: ServerResponse, router: unknown): void {
    const state = monitor.start();
    if (state === undefined) return;
    try {
      pending.set(res, { state, req, mountPath: prop<string | undefined>(req, 'baseUrl') ?? '', router });
      addListener(res, 'close', onResponseDone);
      const sock = prop<(WatchedSocket & { server?: unknown; destroyed?: boolean }) | null>(req, 'socket');
      // A response driven outside an http.Server (a test's own socket) may emit 'finish' only.
      if (sock?.server === undefined) addListener(res, 'finish', onResponseDone);
      // The client may have gone while the request waited (at the isolation gate, or in an
      // earlier async middleware): the 'close' that ends it has been and gone, so end it now.
      if (prop(res, 'destroyed') === true || (sock != null && sock.destroyed === true)) onResponseDone.call(res);
      // Queued behind another response on its connection (pipelining): see core/queued.ts.
      else if (prop(res, 'socket') === null) queued.watch(sock, res);
    } catch (e) {
      monitor.recorder.abandon();
      monitor.fault(e);
    }
  }

  function record(req: ExpressReq, res: ServerResponse, next: (err?: unknown) => void): void {
    track(req, res, routerFor(appOf(req)));
    next();
  }

  /**
   * Recording from in front of the app instead of from inside its router (see lift.ts): set on the
   * first request when the middleware sits at the root of its app's own router.
   */
  let lifted: Lifted | undefined;
  let liftTried = false;

  // The wrapper that takes app.handle's place: the middleware's gate, probe and own-path checks,
  // then the app. Our own path is left to the middleware, at its place in the router.
  const wrap = (original: Handle): Handle => function leakwatchHandle(this: unknown, req: never, res: never, callback?: unknown): unknown {
    const app = this;
    // Left in place after close() when something wrapped app.handle over it: pass straight through.
    if (monitor.closed) return original.call(app, req, res, callback);
    let own = false;
    try { own = monitor.isOwnPath(prop<string | undefined>(req, 'url')); } catch (e) { monitor.fault(e); }
    if (own || (monitor.gate.closed && monitor.isProbeRequest(req))) return original.call(app, req, res, callback);
    const wait = monitor.gate.admit();
    if (wait === undefined) {
      track(req, res, routerFor(lifted?.app));
      return original.call(app, req, res, callback);
    }
    const go = (): void => {
      track(req, res, routerFor(lifted?.app));
      // Unheld, an exception from the app reaches the server's 'request' emit; held, it would
      // become an unhandled rejection here instead. Rethrown outside the promise, it stays the app's.
      try { original.call(app, req, res, callback); } catch (e) { process.nextTick(() => { throw e; }); }
    };
    wait.then(go, go);
    return undefined;
  };

  // Made here, not in the middleware: a closure made there would share its context, which holds
  // the request's req and res, and the layer would keep the first request alive for good.
  const isOwn = (path: string): boolean => monitor.isOwnPath(path);

  const middleware = function leakwatchMiddleware(req: ExpressReq, res: ServerResponse, next: (err?: unknown) => void): void {
    if (!monitor.options.enabled) { next(); return; }
    let own = false;
    try { own = monitor.isOwnPath(prop<string | undefined>(req, 'url')); } catch (e) { monitor.fault(e); }
    if (own) {
      const saved = req.url;
      void monitor.handle(req, res, { clientIp: req.ip, body: req._body ? req.body : undefined, base: req.baseUrl ?? '' })
        .finally(() => { req.url = saved; });
      return;
    }
    // After close() nothing is recorded, and nothing is lifted (no close() would come to undo it).
    if (monitor.closed) { next(); return; }
    if (!liftTried) {
      liftTried = true;
      try { const app = appOf(req); lifted = lift(app, routerFor(app), middleware, wrap, isOwn); } catch (e) { monitor.fault(e); }
    }
    // Already followed: by the wrapper in front of the app, or by this same middleware mounted
    // twice on the request's way (a second start would never be finished, and checkpoints wait
    // for in-flight requests to drain).
    if (pending.has(res)) { next(); return; }
    // Probe replays are sent only while the prober holds the gate: no header lookup otherwise.
    if (monitor.gate.closed && monitor.isProbeRequest(req)) { next(); return; }
    const wait = monitor.gate.admit();
    if (wait === undefined) { record(req, res, next); return; }
    wait.then(() => record(req, res, next), () => record(req, res, next));
  } as LeakwatchMiddleware;
  middleware.monitor = monitor;
  middleware.close = () => {
    if (lifted !== undefined) { lifted.undo(); lifted = undefined; }
    monitor.close();
  };
  if (monitor.options.enabled) announce(monitor, 'express');
  return middleware;
}

export default leakwatch;
