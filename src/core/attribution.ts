import { TRAMPOLINE_PREFIX, REPLAY_FRAME } from './heapsampler';
import { OVERFLOW, UNMATCHED, type RouteStats } from './recorder';

/**
 * Per-route trampolines for the sampling heap profiler.
 *
 * The profiler names the JS frames that allocated each live object, but many routes run the same
 * handler source (a wrapper such as `asyncHandler(fn)`, a factory, the zoo's shared route
 * function), and frames of one source location look alike. So each route's handlers are called
 * through a function compiled for that route alone, named `leakwatch$route$<id>`: everything
 * the handler allocates synchronously sits under that frame and is charged to that route.
 *
 * Handlers are wrapped lazily, when a route's first request finishes (the adapters know its
 * handlers then), and put back on `close()`. A trampoline only forwards its arguments and the
 * return value, so the framework sees the same results, thrown errors and promises.
 */

/** Route ids are process-wide: monitors share one profiler and must not read each other's ids. */
let nextId = 0;

/** `attributionId` values of a RouteStats besides a real id. */
export const NOT_TRIED = -1;
export const NOT_ATTRIBUTED = -2;

/**
 * Routes given a trampoline, at most (the first ones to finish a request). Beyond it the
 * checkpoint regression alone judges a route; it keeps leakwatch's own heap bounded whatever
 * `maxRoutes` says.
 */
export const MAX_TRAMPOLINES = 128;

const originals = new WeakMap<Function, Function>();
const idOf = new WeakMap<Function, number>();

/** Mutable per monitor: while `replaying`, trampolines call through the replay frame. */
interface ReplayControl { replaying: boolean }

// Bytecode padding behind a never-taken branch (see compile).
const PAD = `if (fn === null) { let x = 0; ${'x=x*31+7|0;'.repeat(48)}return x; }`;

/**
 * The frame probe replays run under: the sampler leaves out whatever sits below it, so that what
 * a probe's replays keep (the recorder does not count them) is not charged to the route. Compiled
 * with the same padding as the trampolines so the JIT cannot inline it away.
 */
let replayFrame: Function | undefined;
function replayFrameFn(): Function {
  if (replayFrame === undefined) {
    replayFrame = new Function(`return function ${REPLAY_FRAME}(fn, a, b, c) { ${PAD} return fn(a, b, c); };`)() as Function;
  }
  return replayFrame;
}

function compile(id: number, fn: Function, ctl: ReplayControl): Function {
  // A new function per route needs code generation: a closure from one literal would share one
  // SharedFunctionInfo, and with it one name in the profile. Three parameters keep `length` at 3,
  // which both routers read (4 means an error handler).
  // The never-taken branch is there for its size: the profiler records physical frames only, so
  // a trampoline inlined into its caller vanishes from the stacks and its route's bytes go to the
  // caller (measured: a monomorphic caller, once optimised, left 0 B/call of a 1 KB/call leak).
  // Over 460 bytes of bytecode (48 statements of ~13 bytes), neither TurboFan nor Maglev inlines
  // it. Each trampoline costs about 2.7 KB of heap, hence MAX_TRAMPOLINES.
  const make = new Function('fn', 'ctl', 'replay', `return function ${TRAMPOLINE_PREFIX}${id}(a, b, c) { ${PAD} if (ctl.replaying) return replay(fn, a, b, c); return fn(a, b, c); };`) as (f: Function, c: ReplayControl, r: Function) => Function;
  return make(fn, ctl, replayFrameFn());
}

/** The function a trampoline forwards to (itself when it is not one). */
export function unwrapHandler<T>(fn: T): T {
  return typeof fn === 'function' ? ((originals.get(fn) as T | undefined) ?? fn) : fn;
}

export class Attribution {
  /** Route id → the route charged, or null once two routes turned out to share its handlers. */
  private readonly owners = new Map<number, RouteStats | null>();
  /** Everything we replaced, to put back on close. */
  private readonly restores: Array<() => void> = [];
  private disabled = false;
  private readonly ctl: ReplayControl = { replaying: false };

  /**
   * Probe replays on (true) or over (false): meanwhile this monitor's trampolines run handlers under
   * the replay frame, which the sampler does not charge to any route. The probe holds the gate, so
   * only its replays run.
   */
  replaying(on: boolean): void {
    this.ctl.replaying = on;
  }

  private readonly maxRoutes: number;

  constructor(maxRoutes: number) {
    this.maxRoutes = Math.min(maxRoutes, MAX_TRAMPOLINES);
  }

  /** The route charged for a trampoline id of this monitor (undefined: not ours, or shared). */
  routeOf(id: number): RouteStats | undefined {
    return this.owners.get(id) ?? undefined;
  }

  /** Ids of this monitor, with their route. */
  *entries(): IterableIterator<[number, RouteStats]> {
    for (const [id, s] of this.owners) if (s !== null) yield [id, s];
  }

  /**
   * Puts a trampoline in front of `fn` for `stats`, via `set`. Returns false (and leaves `fn`
   * alone) when the route cannot be attributed: too many routes, a 4-argument error handler,
   * code generation disallowed (`--disallow-code-generation-from-strings`), or a handler that is
   * already another route's trampoline (then neither route is attributed: their bytes mix).
   */
  wrap(stats: RouteStats, fn: unknown, set: (f: Function) => void): boolean {
    if (this.disabled || typeof fn !== 'function') return false;
    // Buckets shared by many URLs (404s, the overflow) have no handler of their own.
    if (stats.route === UNMATCHED || stats.route === OVERFLOW) return false;
    const existing = idOf.get(fn);
    if (existing !== undefined) {
      const owner = this.owners.get(existing);
      if (owner !== stats) {
        if (owner) owner.attributionId = NOT_ATTRIBUTED;
        this.owners.set(existing, null);
        if (stats.attributionId >= 0) this.owners.set(stats.attributionId, null);
        stats.attributionId = NOT_ATTRIBUTED;
        return false;
      }
      return true;
    }
    if (fn.length > 3) return false;
    let id = stats.attributionId;
    if (id < 0) {
      if (this.owners.size >= this.maxRoutes) return false;
      id = nextId++;
    }
    let t: Function;
    try {
      t = compile(id, fn, this.ctl);
    } catch {
      this.disabled = true;
      return false;
    }
    originals.set(t, fn);
    idOf.set(t, id);
    set(t);
    this.restores.push(() => set(fn));
    this.owners.set(id, stats);
    stats.attributionId = id;
    return true;
  }

  /**
   * Express: wraps the handlers of the matched route (`req.route.stack`) that serve this method.
   * Method-less layers (`route.all`) are left alone: they serve other methods, which are other
   * routes here.
   */
  wrapExpressRoute(stats: RouteStats, route: unknown, method: string | undefined): void {
    const stack = route !== null && typeof route === 'object' ? (route as { stack?: unknown }).stack : undefined;
    const m = (method ?? '').toLowerCase();
    if (Array.isArray(stack)) {
      for (const layer of stack as unknown[]) {
        if (layer === null || typeof layer !== 'object') continue;
        const l = layer as { method?: unknown; handle?: unknown };
        if (l.method !== m) continue;
        if (!this.wrap(stats, l.handle, (f) => { l.handle = f; })) {
          if (stats.attributionId === NOT_ATTRIBUTED) return;
        }
      }
    }
    if (stats.attributionId === NOT_TRIED) stats.attributionId = NOT_ATTRIBUTED;
  }

  /** Fastify: wraps the route context's handler (what Fastify calls as `context.handler(request, reply)`). */
  wrapFastifyRoute(stats: RouteStats, context: { handler?: unknown } | undefined): void {
    if (context !== undefined) this.wrap(stats, context.handler, (f) => { context.handler = f; });
    if (stats.attributionId === NOT_TRIED) stats.attributionId = NOT_ATTRIBUTED;
  }

  /** Puts every original handler back. */
  close(): void {
    for (const r of this.restores.splice(0)) {
      try { r(); } catch { /* the app is going away */ }
    }
    for (const s of this.owners.values()) if (s) s.attributionId = NOT_ATTRIBUTED;
    this.owners.clear();
    this.disabled = true;
  }
}
