import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import type { ServerResponse } from 'node:http';
import { LeakMonitor } from '../core/monitor';
import { OVERFLOW, UNMATCHED } from '../core/recorder';
import type { RequestState, RouteStats } from '../core/recorder';
import type { LeakwatchOptions } from '../core/types';
import { announce } from '../core/notice';
import { NOT_TRIED, unwrapHandler } from '../core/attribution';
import { QueuedResponses, type WatchedSocket } from '../core/queued';
import { COUNTED, CountedResponses, TIMED, UNCOUNTABLE } from '../core/counted';

export type { LeakwatchOptions } from '../core/types';

declare module 'fastify' {
  interface FastifyInstance {
    /** The leakwatch monitor of this instance. */
    leakwatch: LeakMonitor;
  }
}

const plugin: FastifyPluginAsync<LeakwatchOptions> = async (fastify: FastifyInstance, opts: LeakwatchOptions) => {
  // Fastify adds no keys of its own to plugin options in v5, but strip the known ones defensively.
  const { prefix: _p, logLevel: _l, ...rest } = opts as LeakwatchOptions & { logLevel?: unknown };
  const options: LeakwatchOptions = { ...rest };
  if ((opts as { prefix?: unknown }).prefix !== undefined) options.prefix = (opts as { prefix?: string }).prefix;
  const monitor = new LeakMonitor(options);
  fastify.decorate('leakwatch', monitor);
  fastify.addHook('onClose', async () => { monitor.close(); });
  if (!monitor.options.enabled) return;

  interface RouteContext { config?: { url?: string }; handler?: unknown }
  // The request's state rides on the raw response under our own symbol: a WeakMap set, get and
  // delete per request cost more than everything else this adapter does (bench:overhead).
  const kState = Symbol('leakwatch.state');
  type Tagged = ServerResponse & { [kState]?: RequestState };
  const queued = new QueuedResponses((res) => onResponseDone.call(res as Tagged), (res) => (res as Tagged)[kState] !== undefined, (e) => monitor.fault(e));

  // The end of a request is read from the raw response's 'close' (after 'finish', or alone when
  // the client went away first), through one shared listener, instead of onResponse and onRequestAbort
  // hooks: with those, Fastify sets up per-request closures and listeners of its own
  // (setupResponseListeners, a 'close' closure), which cost more than all of leakwatch's work.
  function onResponseDone(this: Tagged): void {
    const res = this;
    const state = res[kState];
    if (state === undefined) return;
    res[kState] = undefined;
    try {
      const reply = state.ctx as FastifyReply;
      const request = reply.request;
      const aborted = !res.writableEnded;
      const ctx = routeContext(request);
      const stats = monitor.finish(state, request.method, routeLabel(request, ctx), aborted ? 0 : res.statusCode, aborted, request.raw, aborted ? undefined : request.body);
      // The reply holds the raw response and the request, which holds the raw request and its socket.
      if (monitor.holdsLast) monitor.holdLast(reply);
      if (stats !== undefined && stats.attributionId === NOT_TRIED && monitor.attribution !== undefined) {
        monitor.attribution.wrapFastifyRoute(stats, ctx);
      }
      // The probe's scope diff lists the closure of the route's handler (not our trampoline's).
      // Only when the recorder just captured this request (it resets handlerRef from the raw request).
      if (stats?.lastRequest !== undefined && stats.lastRequest.handlerRef === undefined) stats.lastRequest.handlerRef = unwrapHandler(ctx !== undefined ? ctx.handler : request.routeOptions?.handler);
    } catch (e) {
      monitor.fault(e);
    }
  }

  // `request.routeOptions` is a getter that builds an 11-field object and asks the router about
  // constraint strategies on every access. The route context it reads from sits on the request
  // under Fastify's own symbol, found once by its description; when a Fastify version has no such
  // symbol, the public getter is used instead.
  let contextKey: symbol | null | undefined;
  function routeContext(request: FastifyRequest): RouteContext | undefined {
    if (contextKey === undefined) {
      contextKey = Object.getOwnPropertySymbols(request).find((k) => k.description === 'fastify.context') ?? null;
    }
    if (contextKey === null) return undefined;
    const ctx = (request as unknown as Record<symbol, RouteContext | undefined>)[contextKey];
    return ctx !== null && typeof ctx === 'object' ? ctx : undefined;
  }

  /** The route's URL with its prefix (`routeOptions.url`), or UNMATCHED for Fastify's 404s. */
  function routeLabel(request: FastifyRequest, ctx: RouteContext | undefined): string {
    return (ctx !== undefined ? ctx.config?.url : request.routeOptions?.url) ?? UNMATCHED;
  }

  // Counted follow: a Fastify request's route is known when it starts, so most requests are only
  // counted on their route, with no clock, no per-request state and no listener: they wait on
  // their connection until the next request or its close (core/counted.ts). One request in
  // sampleEvery per route is timed and sampled as dev mode times every request. Production mode
  // counts always; dev mode while its recorder is light (under load or in the calm), where timing
  // every request had cost +7.8% instructions on /hello against production's +3.3% (callgrind).
  // Recorder.counts says when, per request; it also waits out a pending process warning.
  const rec = monitor.recorder;
  const counted = new CountedResponses(rec, (e) => monitor.fault(e));
  monitor.features.counted = counted;

  // A route's stats, cached on Fastify's route context under our own symbol: one property read
  // instead of the label, two Map lookups and a string hash per request. The recorder never drops
  // a route, so the cached entry stays the table's. A context may serve several methods.
  const kStats = Symbol('leakwatch.route');
  function routeStats(request: FastifyRequest): RouteStats {
    const ctx = routeContext(request) as (RouteContext & { [kStats]?: RouteStats }) | undefined;
    const known = ctx?.[kStats];
    if (known !== undefined && known.method === request.method) return known;
    // No request recorded by this lookup: a timed request is, by LeakMonitor.finish.
    const stats = rec.routeFor(request.method, routeLabel(request, ctx), false);
    if (ctx !== undefined) ctx[kStats] = stats;
    return stats;
  }

  /** COUNTED, TIMED (sampled) or UNCOUNTABLE (timed, sampled one in sampleEvery process-wide). */
  function countOrTime(request: FastifyRequest, reply: FastifyReply): number {
    if (monitor.closed) return UNCOUNTABLE;
    try {
      // While onFinish waits to name the routes in flight, every request is timed; the one parked
      // before it on its connection has finished, and onFinish wants to hear of it now.
      if (!rec.counts) { counted.release(request.raw.socket, reply.raw); return UNCOUNTABLE; }
      const stats = routeStats(request);
      const how = counted.begin(request.raw.socket, reply.raw, stats);
      // Recorder.routeFor counts a timed request that lands in the overflow bucket.
      if (how === COUNTED && stats.route === OVERFLOW) rec.overflowed++;
      return how;
    } catch (e) {
      // Nothing was counted in: the timed path may still record it.
      monitor.fault(e);
      return UNCOUNTABLE;
    }
  }

  function track(request: FastifyRequest, reply: FastifyReply): void {
    const how = countOrTime(request, reply);
    if (how === COUNTED) {
      // Held from its start: it lives on until the next counted request anyway (see holdLast).
      if (monitor.holdsLast) monitor.holdLast(reply, true);
      return;
    }
    const state = monitor.start(how === TIMED ? true : undefined);
    if (state === undefined) return;
    try {
      const res = reply.raw as Tagged;
      state.ctx = reply;
      res[kState] = state;
      // 'close' alone: Node emits it after 'finish' on every response (and alone when the client
      // went away), light-my-request too. A second listener on 'finish', where Node keeps its own,
      // turns that event's single listener into an array on every request.
      res.on('close', onResponseDone);
      const sock = request.raw.socket as (WatchedSocket & { server?: unknown; destroyed?: boolean }) | null;
      // A response driven outside an http.Server (a custom socket) may emit 'finish' only.
      if (sock?.server === undefined) res.on('finish', onResponseDone);
      // The client may have gone while the request waited (at the isolation gate, or in an earlier
      // async hook): the 'close' that ends it has been and gone, so end it now.
      if (res.destroyed || (sock !== null && sock !== undefined && sock.destroyed === true)) onResponseDone.call(res);
      // Queued behind another response on its connection (pipelining): see core/queued.ts.
      else if (res.socket === null) queued.watch(sock, res);
    } catch (e) {
      monitor.recorder.abandon();
      monitor.fault(e);
    }
  }

  // A callback-style hook: Fastify runs it without the promise and the microtask that an async
  // hook costs on every request (bench:overhead counts the instructions).
  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    let own = false;
    try { own = monitor.isOwnPath(request.raw.url); } catch (e) { monitor.fault(e); }
    if (own) {
      // Our endpoints read the raw stream themselves, so Fastify's body parsing must not run.
      reply.hijack();
      monitor.handle(request.raw, reply.raw, { clientIp: request.ip }).then(() => done(), () => done());
      return;
    }
    // Probe replays are sent only while the prober holds the gate: no header lookup otherwise.
    if (monitor.gate.closed && monitor.isProbeRequest(request.raw)) { done(); return; }
    const wait = monitor.gate.admit();
    if (wait === undefined) { track(request, reply); done(); return; }
    const go = (): void => { track(request, reply); done(); };
    wait.then(go, go);
  });

  fastify.addHook('onListen', async () => {
    const a = fastify.server.address();
    const where = a && typeof a === 'object' ? `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` : undefined;
    announce(monitor, 'fastify', where);
  });
};

/**
 * Fastify plugin: records every request per route (`request.routeOptions.url`, prefix included)
 * and serves the dashboard and JSON API under `options.path` (default `/__leaks`). Fastify 5.
 *
 * @example
 * ```js
 * const fastify = require('fastify')();
 * const { fastifyLeakwatch } = require('leakwatch/fastify');
 * await fastify.register(fastifyLeakwatch, { path: '/__leaks' });
 * fastify.get('/users/:id', async (req) => ({ id: req.params.id }));
 * await fastify.listen({ port: 3000 });
 * ```
 */
export const fastifyLeakwatch = fp(plugin, { fastify: '5.x', name: 'leakwatch' });

export default fastifyLeakwatch;
