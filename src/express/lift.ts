/**
 * Moves the Express middleware's per-request work from inside the app's router to a wrapper in
 * front of the app (its `handle`), when that changes nothing the app can see.
 *
 * Why: a middleware costs Express 5 about 3% of a hello-world request before it does anything
 * (callgrind: a `next()`-only middleware, `npm run bench:overhead`). The router calls it through
 * its layer machinery, and every read it makes of `req` and `res` misses V8's caches, because
 * Express gives both a new prototype on every request (core/prop.ts). A wrapper around
 * `app.handle` runs before that, on Node's own objects, and the router no longer calls the
 * middleware for the requests it only records.
 *
 * What stays where it was: the middleware's layer keeps its place in the router and still
 * serves leakwatch's own path there, behind whatever the app mounted before it (an auth
 * middleware in front of the dashboard still guards it). Its layer is only told to match that path
 * alone. Everything else the middleware did per request (the isolation gate, skipping probe
 * replays, following the response to its end) the wrapper does instead.
 *
 * When it is done: only for a middleware mounted once, at the root (`app.use(leakwatch())`), of
 * an app's own router, on Express 4 or 5. Mounted under a path, inside a `Router`, or twice, the
 * middleware records as before. `undo()` puts both pieces back (the middleware's `close()`).
 */

/** Express's `app.handle(req, res, callback)`. */
export type Handle = (this: unknown, req: never, res: never, callback?: unknown) => unknown;

interface LayerLike {
  handle?: unknown;
  route?: unknown;
  match?: (path: string) => unknown;
  /** router 2.x: true for a layer mounted at `/` that matches every path. */
  slash?: boolean;
  /** Express 4: the same, on the layer's regexp. */
  regexp?: { fast_slash?: boolean };
}

export interface Lifted {
  /** The app whose `handle` is wrapped. */
  readonly app: object;
  /** Puts the app's `handle` and the layer's `match` back as they were. */
  undo(): void;
}

/**
 * Lifts `middleware` out of `app`'s router (`router`, as the adapter finds it for Express 4 and 5)
 * when it can: returns undefined (and changes nothing) when it cannot. `wrap(original)` builds the
 * wrapper that takes `app.handle`'s place; `isOwn(path)` is the one test the middleware's layer
 * still makes.
 */
export function lift(app: unknown, router: unknown, middleware: unknown, wrap: (original: Handle) => Handle, isOwn: (path: string) => boolean): Lifted | undefined {
  if (typeof app !== 'function') return undefined;
  const own = Object.getOwnPropertyDescriptor(app, 'handle');
  // Express copies `handle` onto every app as a plain writable data property.
  if (own === undefined || typeof own.value !== 'function' || own.writable !== true || own.get !== undefined) return undefined;
  const stack = (router as { stack?: unknown } | null | undefined)?.stack;
  if (!Array.isArray(stack)) return undefined;
  const ours = stack.filter((l) => (l as LayerLike | null)?.handle === middleware) as LayerLike[];
  if (ours.length !== 1) return undefined;
  const layer = ours[0];
  if (layer.route !== undefined || typeof layer.match !== 'function') return undefined;
  if (layer.slash !== true && layer.regexp?.fast_slash !== true) return undefined;
  if (Object.prototype.hasOwnProperty.call(layer, 'match')) return undefined;

  const target = app as unknown as { handle: Handle };
  const original = own.value as Handle;
  const originalMatch = layer.match;
  const handle = wrap(original);
  // The layer still matches as a root layer does (its own result shape, Express 4 or 5), but only
  // for leakwatch's own path: the router skips it for every other request.
  const match = function leakwatchMatch(this: LayerLike, path: string): unknown {
    return isOwn(path) ? originalMatch.call(this, path) : false;
  };
  target.handle = handle;
  layer.match = match;
  let undone = false;
  return {
    app,
    undo(): void {
      if (undone) return;
      undone = true;
      // Only what is still ours: the app may have been changed again since.
      if (target.handle === handle) target.handle = original;
      if (layer.match === match) delete layer.match;
    },
  };
}
