/**
 * Recovers an Express route *template* (`/api/v1/orgs/:org/users/:id`) for a finished request.
 *
 * `req.route.path` is only the last piece, and `req.baseUrl` holds the matched *values* of the
 * mount points (`/api/v1/orgs/acme`), so the mount patterns must come from the router layers.
 * Express 4 and router 1.x keep no pattern string on a layer; router 2.3+ does (`rawPath`, and
 * `match()` returns the pattern). We re-run each layer's own `match()` once the request is over,
 * which is synchronous and so cannot interleave with Express's own dispatch. A sub-app's layer
 * holds only a closure; its router is found through `req.app`, the innermost app that served the
 * request, and that app's `parent` chain.
 */

import { prop } from '../core/prop';

interface LayerLike {
  route?: { path?: unknown };
  handle?: { stack?: unknown };
  match?: (path: string) => unknown;
  params?: Record<string, string>;
  path?: string;
  rawPath?: unknown;
}

interface Matched {
  path: string;
  params: Record<string, string>;
  pattern: unknown;
}

function matchLayer(layer: LayerLike, path: string): Matched | undefined {
  if (typeof layer.match !== 'function') return undefined;
  const m = layer.match(path);
  if (!m) return undefined;
  if (m === true) return { path: layer.path ?? '', params: layer.params ?? {}, pattern: undefined };
  const o = m as { path?: string; params?: Record<string, string>; pattern?: unknown };
  return { path: o.path ?? '', params: o.params ?? {}, pattern: o.pattern };
}

/** Writes a mount point's matched path back as a template: `/orgs/acme` with {org: 'acme'} → `/orgs/:org`. */
function mountTemplate(m: Matched): string {
  if (typeof m.pattern === 'string') return m.pattern === '/' ? '' : m.pattern;
  const names = Object.keys(m.params);
  if (names.length === 0) return m.path;
  const used = new Set<string>();
  return m.path.split('/').map((seg) => {
    if (seg === '') return seg;
    let value = seg;
    try { value = decodeURIComponent(seg); } catch { /* keep raw */ }
    for (const name of names) {
      if (!used.has(name) && m.params[name] === value) {
        used.add(name);
        return /^\d+$/.test(name) ? '*' : ':' + name;
      }
    }
    return seg;
  }).join('/');
}

export function routePathString(path: unknown): string {
  if (typeof path === 'string') return path;
  if (Array.isArray(path)) return path.map(routePathString).join('|');
  if (path instanceof RegExp) return path.toString();
  return String(path);
}

function join(a: string, b: string): string {
  if (a === '' || a === '/') return b;
  // Express 4 reports a mount's matched path with the request's trailing slash; drop it.
  const left = a.replace(/\/+$/, '');
  if (b === '/' || b === '') return left || '/';
  return left + (b.startsWith('/') ? b : '/' + b);
}

/** The router of an Express app: `app.router` in Express 5, `app._router` in Express 4. */
export function routerOf(app: unknown): unknown {
  if (app === null || (typeof app !== 'object' && typeof app !== 'function')) return undefined;
  // Express 4 throws from its `app.router` getter.
  try {
    const r5 = (app as { router?: unknown }).router;
    if (r5 !== null && (typeof r5 === 'function' || typeof r5 === 'object')) return r5;
  } catch { /* Express 4 */ }
  return (app as { _router?: unknown })._router;
}

/**
 * The sub-apps a request went through, outermost first. A sub-app's layer in its parent's router
 * holds only a `mounted_app` closure, so its router cannot be reached from the layer; but the
 * innermost app that served the request is `req.app`, and each mounted app knows its `parent`.
 */
function subApps(req: object): unknown[] {
  const out: unknown[] = [];
  let app = prop<unknown>(req, 'app');
  // An Express app is a function; one that was mounted has a parent.
  while (typeof app === 'function' && (app as { parent?: unknown }).parent !== undefined && out.length < 16) {
    out.push(app);
    app = (app as { parent?: unknown }).parent;
  }
  return out.reverse();
}

function walk(stack: unknown, path: string, target: unknown, depth: number, apps: unknown[], from: number): string | undefined {
  if (!Array.isArray(stack) || depth > 16) return undefined;
  for (const layer of stack as LayerLike[]) {
    if (layer.route !== undefined) {
      if (layer.route !== target) continue;
      if (!matchLayer(layer, path)) continue;
      return routePathString(layer.route.path);
    }
    const handle: unknown = layer.handle;
    const sub = (handle as { stack?: unknown } | undefined)?.stack;
    const mountsApp = !Array.isArray(sub) && from < apps.length && typeof handle === 'function' && handle.name === 'mounted_app';
    if (!Array.isArray(sub) && !mountsApp) continue;
    const m = matchLayer(layer, path);
    if (!m) continue;
    let rest = path.slice(m.path.length);
    if (rest === '' || rest[0] !== '/') rest = '/' + rest;
    if (Array.isArray(sub)) {
      const inner = walk(sub, rest, target, depth + 1, apps, from);
      if (inner !== undefined) return join(mountTemplate(m), inner);
      continue;
    }
    // Which app this layer mounts is unknown: try the request's sub-apps below the ones already
    // entered (the chain runs outermost first); only the one whose router holds the route that
    // served the request can match.
    for (let i = from; i < apps.length; i++) {
      const inner = walk((routerOf(apps[i]) as { stack?: unknown } | undefined)?.stack, rest, target, depth + 1, apps, i + 1);
      if (inner !== undefined) return join(mountTemplate(m), inner);
    }
  }
  return undefined;
}

const CACHE_PER_ROUTE = 64;
const cache = new WeakMap<object, Map<string, string>>();
/**
 * Routes whose cache filled with one template for every mount value: a route under a mount with
 * parameters (`/orgs/:org`, one `baseUrl` per org). Their template no longer needs the walk for a
 * `baseUrl` of the same shape: as many segments, and the same literal ones where the mount's
 * pattern has literals (so that a router also mounted at `/v2/:org` is still walked for those).
 */
interface Sole { template: string; mount: string[] }
const sole = new WeakMap<object, Sole>();

/** The mount part of `template` as segments, when it is only literals and `:name` parameters. */
function mountShape(template: string, routePath: string): string[] | undefined {
  // join() leaves a route at '/' as its mount path alone.
  const path = routePath === '/' ? template : template.endsWith(routePath) ? template.slice(0, template.length - routePath.length) : undefined;
  if (path === undefined) return undefined;
  const mount = path.split('/');
  for (const seg of mount) if (!/^(?::\w+|[\w.~-]*)$/.test(seg)) return undefined;
  return mount;
}

function fits(shape: string[], baseUrl: string): boolean {
  // Compared in place, by character codes: split(), and even indexOf() and startsWith() with a
  // position, cost several times the rest of the lookup (bench:hotpath).
  let end = baseUrl.length;
  while (end > 0 && baseUrl.charCodeAt(end - 1) === 47 /* '/' */) end--;
  let pos = 0;
  for (let i = 0; i < shape.length; i++) {
    let next = pos;
    while (next < end && baseUrl.charCodeAt(next) !== 47) next++;
    if ((i === shape.length - 1) !== (next === end)) return false;
    const p = shape[i];
    if (p.charCodeAt(0) === 58 /* ':' */) {
      if (next === pos) return false;
    } else {
      if (next - pos !== p.length) return false;
      for (let k = 0; k < p.length; k++) if (baseUrl.charCodeAt(pos + k) !== p.charCodeAt(k)) return false;
    }
    pos = next + 1;
  }
  return true;
}

/**
 * The full template of the route that served `req`, or undefined when no route matched.
 * `mountPath` is `req.baseUrl` when leakwatch's middleware ran: non-empty inside a sub-app.
 */
export function expressTemplate(req: { route?: { path?: unknown }; baseUrl?: string; originalUrl?: string; url?: string }, router: unknown, mountPath: string): string | undefined {
  // Keyed reads: Express's req has a new hidden class on every request (core/prop.ts).
  const route = prop<{ path?: unknown } | undefined | null>(req, 'route');
  if (route === undefined || route === null) return undefined;
  const baseUrl = prop<string | undefined>(req, 'baseUrl') ?? '';
  // Mounts without parameters give one baseUrl per route, so this cache almost always hits;
  // it is bounded per route so that mounts with parameters cannot grow it.
  let perRoute = cache.get(route);
  const hit = perRoute?.get(baseUrl);
  if (hit !== undefined) return hit;
  const one = sole.get(route);
  if (one !== undefined && fits(one.mount, baseUrl)) return one.template;
  let template: string | undefined;
  const stack = (router as { stack?: unknown } | undefined)?.stack;
  if (stack !== undefined) {
    const url = req.originalUrl ?? req.url ?? '/';
    const q = url.indexOf('?');
    const pathname = q < 0 ? url : url.slice(0, q);
    const apps = subApps(req);
    template = walk(stack, pathname, route, 0, apps, 0);
    // Inside a sub-app the router's patterns are relative to the sub-app's mount point.
    if (template === undefined && mountPath && pathname.startsWith(mountPath)) {
      const inner = walk(stack, pathname.slice(mountPath.length) || '/', route, 0, apps, 0);
      if (inner !== undefined) template = join(mountPath, inner);
    }
  }
  // A router the walk could not enter (an app mounted by other means): the conventional label.
  template ??= join(baseUrl, routePathString(route.path));
  if (perRoute === undefined) { perRoute = new Map(); cache.set(route, perRoute); }
  if (perRoute.size < CACHE_PER_ROUTE) {
    perRoute.set(baseUrl, template);
    if (perRoute.size === CACHE_PER_ROUTE) {
      let same = true;
      for (const t of perRoute.values()) if (t !== template) { same = false; break; }
      const mount = same ? mountShape(template, routePathString(route.path)) : undefined;
      if (mount !== undefined) sole.set(route, { template, mount });
    }
  }
  return template;
}
