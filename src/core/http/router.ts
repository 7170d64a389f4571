import type { IncomingMessage, ServerResponse } from 'node:http';
import { timingSafeEqual } from 'node:crypto';
import { HttpError, readBody, sendError } from './respond';

export const BODY_LIMIT = 64 * 1024;

/** What a handler of leakwatch's own endpoints receives. */
export interface HttpContext {
  req: IncomingMessage;
  res: ServerResponse;
  /** Path below the mount point, starting with `/` (`/` for the mount point itself). */
  subpath: string;
  /** The mount point as the browser sees it (e.g. `/__leaks`): prefix every link with it. */
  base: string;
  query: URLSearchParams;
  /** Regex groups when the route's pattern is a RegExp. */
  params: string[];
  /** The body of a POST: parsed JSON, or the fields of a form (after its token was checked). */
  body(): Promise<Record<string, unknown>>;
  /** True when the POST came from a no-JS form (so the answer should be a redirect). */
  isForm: boolean;
}

export type Handler = (ctx: HttpContext) => void | Promise<void>;

interface Route {
  method: 'GET' | 'POST';
  pattern: string | RegExp;
  handler: Handler;
}

/**
 * A small router for leakwatch's own endpoints. It is framework-free on purpose: the same
 * handlers serve Express, Fastify and plain `http`.
 */
export class Router {
  private routes: Route[] = [];

  constructor(private readonly formToken: string) {}

  get(pattern: string | RegExp, handler: Handler): this {
    this.routes.push({ method: 'GET', pattern, handler });
    return this;
  }

  post(pattern: string | RegExp, handler: Handler): this {
    this.routes.push({ method: 'POST', pattern, handler });
    return this;
  }

  async dispatch(req: IncomingMessage, res: ServerResponse, subpath: string, query: URLSearchParams, preParsed: unknown, base: string): Promise<void> {
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    const allowed = new Set<string>();
    for (const r of this.routes) {
      let params: string[] | undefined;
      if (typeof r.pattern === 'string') {
        if (r.pattern !== subpath) continue;
        params = [];
      } else {
        const m = r.pattern.exec(subpath);
        if (!m) continue;
        params = m.slice(1);
      }
      allowed.add(r.method);
      if (r.method === 'GET') allowed.add('HEAD');
      if (r.method !== method) continue;
      const ctx = this.context(req, res, subpath, base, query, params, preParsed);
      if (r.method === 'POST') {
        this.checkPost(req, ctx);
        // Read and check the body (and a form's token) before any handler can change state,
        // even a handler that never looks at its body.
        await ctx.body();
      }
      await r.handler(ctx);
      return;
    }
    if (allowed.size > 0) {
      const allow = [...allowed].join(', ');
      throw new HttpError(405, `method ${clip(String(req.method), 40)} is not allowed on ${clip(subpath, 200)}; allowed: ${allow}`, { Allow: allow });
    }
    throw new HttpError(404, `no leakwatch endpoint at ${clip(subpath, 200)}`);
  }

  /** Cross-site and content-type rules for every state-changing endpoint. */
  private checkPost(req: IncomingMessage, ctx: HttpContext): void {
    const site = req.headers['sec-fetch-site'];
    // `same-site` is a sibling subdomain, which may be someone else's app: only same-origin
    // pages (and `none`, a user-initiated navigation) may change state.
    if (site !== undefined && site !== 'same-origin' && site !== 'none') {
      throw new HttpError(403, `cross-site requests are refused (Sec-Fetch-Site: ${clip(String(site), 40)})`);
    }
    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (origin === 'null') throw new HttpError(403, 'cross-site requests are refused (Origin: null)');
      if (!sameHost(origin, req.headers.host)) {
        throw new HttpError(403, `cross-site requests are refused (Origin ${JSON.stringify(clip(origin, 200))} is not the host ${JSON.stringify(clip(req.headers.host ?? '', 200))})`);
      }
    }
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json' && type !== 'application/x-www-form-urlencoded') {
      throw new HttpError(415, `content type must be application/json; received ${type === '' ? 'none' : JSON.stringify(clip(type, 100))}`);
    }
    ctx.isForm = type === 'application/x-www-form-urlencoded';
  }

  private context(req: IncomingMessage, res: ServerResponse, subpath: string, base: string, query: URLSearchParams, params: string[], preParsed: unknown): HttpContext {
    const formToken = this.formToken;
    let cached: Promise<Record<string, unknown>> | undefined;
    const ctx: HttpContext = {
      req, res, subpath, base, query, params, isForm: false,
      body() {
        cached ??= (async () => {
          let value: unknown;
          if (preParsed !== undefined) {
            value = preParsed;
          } else {
            const text = await readBody(req, BODY_LIMIT);
            if (ctx.isForm) {
              value = Object.fromEntries(new URLSearchParams(text));
            } else {
              if (text.trim() === '') value = {};
              else {
                try { value = JSON.parse(text); } catch (e) {
                  throw new HttpError(400, `malformed JSON body: ${(e as Error).message}`);
                }
              }
            }
          }
          if (value === null || typeof value !== 'object' || Array.isArray(value)) {
            throw new HttpError(400, 'the body must be a JSON object');
          }
          const obj = value as Record<string, unknown>;
          if (ctx.isForm && !tokenMatches(obj._token, formToken)) throw new HttpError(403, 'form token missing or wrong; reload the dashboard page');
          return obj;
        })();
        return cached;
      },
    };
    return ctx;
  }
}

/** Constant-time comparison of a submitted form token with ours. */
function tokenMatches(given: unknown, expected: string): boolean {
  if (typeof given !== 'string' || given.length !== expected.length) return false;
  return timingSafeEqual(Buffer.from(given), Buffer.from(expected));
}

/** Attacker-controlled text echoed in an error message is cut short. */
function clip(s: string, max: number): string {
  return s.length > max ? s.slice(0, max) + '…' : s;
}

const DEFAULT_PORT: Record<string, string> = { 'http:': '80', 'https:': '443' };

/** An Origin header as hostname and effective port; undefined unless it is an http(s) origin. */
function parseOrigin(origin: string): { hostname: string; port: string } | undefined {
  if (origin.length > 1024) return undefined;
  try {
    const u = new URL(origin);
    const def = DEFAULT_PORT[u.protocol];
    if (def === undefined || u.username !== '' || u.password !== '') return undefined;
    return { hostname: u.hostname, port: u.port === '' ? def : u.port };
  } catch {
    return undefined;
  }
}

/** A Host header as hostname and port ('' when absent); undefined when it is not just a host. */
function parseHost(host: string | undefined): { hostname: string; port: string } | undefined {
  if (host === undefined || host === '' || host.length > 1024 || /[/?#@\\\s]/.test(host)) return undefined;
  try {
    // The URL parser lower-cases and normalises the name; `http:` drops an explicit :80, which
    // parseOrigin's default port restores on comparison.
    const u = new URL(`http://${host}`);
    return { hostname: u.hostname, port: u.port === '' && /:80$/.test(host) ? '80' : u.port };
  } catch {
    return undefined;
  }
}

/**
 * Same host as far as a browser's Origin can tell: the names must match, and the ports must
 * match once the Origin's default port is filled in. A Host without a port matches an Origin on
 * its scheme's default port (`Host: example.com` and `Origin: https://example.com`).
 */
function sameHost(origin: string, hostHeader: string | undefined): boolean {
  const o = parseOrigin(origin);
  const h = parseHost(hostHeader);
  if (o === undefined || h === undefined || o.hostname !== h.hostname) return false;
  if (h.port === '') return o.port === '80' || o.port === '443';
  return o.port === h.port;
}

export function handleError(res: ServerResponse, err: unknown, log: (e: unknown) => void): void {
  if (err instanceof HttpError) {
    sendError(res, err.status, err.message, err.headers);
    return;
  }
  log(err);
  sendError(res, 500, 'leakwatch internal error: ' + (err instanceof Error ? err.message : String(err)));
}
