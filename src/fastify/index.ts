import fp from 'fastify-plugin';
import type { FastifyInstance, FastifyPluginAsync, FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import { LeakMonitor } from '../core/monitor';
import { UNMATCHED } from '../core/recorder';
import type { RequestState } from '../core/recorder';
import type { LeakwatchOptions } from '../core/types';
import { announce } from '../core/notice';

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

  const states = new WeakMap<FastifyRequest, RequestState>();

  function track(request: FastifyRequest): void {
    const state = monitor.start();
    if (state !== undefined) states.set(request, state);
  }

  // Callback-style hooks on the request path: Fastify runs them without the promise and the
  // microtask that an async hook costs on every request (bench:overhead counts the instructions).
  fastify.addHook('onRequest', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    let own = false;
    try { own = monitor.isOwnPath(request.raw.url); } catch (e) { monitor.fault(e); }
    if (own) {
      // Our endpoints read the raw stream themselves, so Fastify's body parsing must not run.
      reply.hijack();
      monitor.handle(request.raw, reply.raw, { clientIp: request.ip }).then(() => done(), () => done());
      return;
    }
    if (monitor.isProbeRequest(request.raw)) { done(); return; }
    const wait = monitor.gate.admit();
    if (wait === undefined) { track(request); done(); return; }
    const go = (): void => { track(request); done(); };
    wait.then(go, go);
  });

  fastify.addHook('onResponse', (request: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction) => {
    const state = states.get(request);
    if (state !== undefined) {
      states.delete(request);
      try {
        const url = request.routeOptions?.url;
        const aborted = !reply.raw.writableEnded;
        const stats = monitor.finish(state, request.method, url ?? UNMATCHED, reply.statusCode, aborted, request.raw, request.body);
        // The probe's scope diff lists the closure of the route's handler.
        if (stats?.lastRequest !== undefined) stats.lastRequest.handlerRef = request.routeOptions?.handler;
      } catch (e) {
        monitor.fault(e);
      }
    }
    done();
  });

  // A client that goes away before the response is done never reaches onResponse.
  fastify.addHook('onRequestAbort', async (request: FastifyRequest) => {
    const state = states.get(request);
    if (state === undefined) return;
    states.delete(request);
    monitor.finish(state, request.method, request.routeOptions?.url ?? UNMATCHED, 0, true, request.raw);
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
