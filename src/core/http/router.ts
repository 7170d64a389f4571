import type { IncomingMessage, ServerResponse } from 'node:http';
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
      if (r.method === 'POST') this.checkPost(req, ctx);
      await r.handler(ctx);
      return;
    }
    if (allowed.size > 0) {
      const allow = [...allowed].join(', ');
      throw new HttpError(405, `method ${String(req.method)} is not allowed on ${subpath}; allowed: ${allow}`, { Allow: allow });
    }
    throw new HttpError(404, `no leakwatch endpoint at ${subpath}`);
  }

  /** Cross-site and content-type rules for every state-changing endpoint. */
  private checkPost(req: IncomingMessage, ctx: HttpContext): void {
    const site = req.headers['sec-fetch-site'];
    if (site === 'cross-site') throw new HttpError(403, 'cross-site requests are refused (Sec-Fetch-Site: cross-site)');
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== 'null') {
      let originHost = '';
      try { originHost = new URL(origin).host; } catch { /* unparsable origin: refused below */ }
      if (originHost === '' || originHost !== req.headers.host) throw new HttpError(403, `cross-site requests are refused (Origin ${JSON.stringify(origin)} is not ${JSON.stringify(req.headers.host ?? '')})`);
    } else if (origin === 'null') {
      throw new HttpError(403, 'cross-site requests are refused (Origin: null)');
    }
    const type = String(req.headers['content-type'] ?? '').split(';')[0].trim().toLowerCase();
    if (type !== 'application/json' && type !== 'application/x-www-form-urlencoded') {
      throw new HttpError(415, `content type must be application/json; received ${type === '' ? 'none' : JSON.stringify(type)}`);
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
          if (ctx.isForm && obj._token !== formToken) throw new HttpError(403, 'form token missing or wrong; reload the dashboard page');
          return obj;
        })();
        return cached;
      },
    };
    return ctx;
  }
}

export function handleError(res: ServerResponse, err: unknown, log: (e: unknown) => void): void {
  if (err instanceof HttpError) {
    sendError(res, err.status, err.message, err.headers);
    return;
  }
  log(err);
  sendError(res, 500, 'leakwatch internal error: ' + (err instanceof Error ? err.message : String(err)));
}
