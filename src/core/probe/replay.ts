import http from 'node:http';
import https from 'node:https';
import type { CapturedRequest } from '../types';

/** Headers that describe one hop or one body, never the request itself: not replayed. */
const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te', 'trailer', 'trailers',
  'transfer-encoding', 'upgrade', 'content-length', 'expect', 'http2-settings',
]);

export interface ReplayPlan {
  tls: boolean;
  host: string;
  port: number;
  method: string;
  path: string;
  headers: Record<string, string | string[]>;
  body: Buffer | undefined;
  /** False when the original had a body leakwatch did not keep (over the limit, or unparsed). */
  bodyReplayed: boolean;
}

function serializeBody(body: unknown, contentType: string): Buffer {
  if (Buffer.isBuffer(body)) return body;
  if (typeof body === 'string') return Buffer.from(body);
  if (contentType.includes('application/x-www-form-urlencoded') && body !== null && typeof body === 'object') {
    const p = new URLSearchParams();
    for (const [k, v] of Object.entries(body as Record<string, unknown>)) {
      if (Array.isArray(v)) for (const x of v) p.append(k, String(x)); else p.append(k, String(v));
    }
    return Buffer.from(p.toString());
  }
  return Buffer.from(JSON.stringify(body) ?? '');
}

/** An IPv4-mapped IPv6 address is dialled as plain IPv4; unknown addresses fall back to loopback. */
function dialAddress(a: string | undefined): string {
  if (a === undefined || a === '' || a === '::' || a === '0.0.0.0') return '127.0.0.1';
  if (a.startsWith('::ffff:') && a.includes('.')) return a.slice(7);
  return a;
}

/**
 * Turns a captured request into what the probe sends: the same method, URL, headers and body,
 * minus hop-by-hop headers, plus the probe header so that the gate lets it through and the
 * recorder ignores it. It goes to the port the original came in on, over loopback when the
 * server listens on every interface.
 */
export function planReplay(c: CapturedRequest, probeHeader: string, probeToken: string): ReplayPlan {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(c.headers)) {
    if (v === undefined) continue;
    const lk = k.toLowerCase();
    if (HOP_BY_HOP.has(lk) || lk === probeHeader) continue;
    headers[lk] = v;
  }
  headers[probeHeader] = probeToken;
  let port = c.localPort;
  if (port === undefined) {
    // Older captures (or custom integrations) without the socket's port: the Host header's port.
    const host = typeof c.headers.host === 'string' ? c.headers.host : '';
    const m = /:(\d+)$/.exec(host);
    port = m ? Number(m[1]) : c.tls ? 443 : 80;
  }
  const originalLength = Number(c.headers['content-length'] ?? 0) || 0;
  // Body parsers set `{}` on requests that had no body: only a request that had one gets one.
  const hadBody = originalLength > 0 || c.headers['transfer-encoding'] !== undefined;
  const body = hadBody && c.body !== undefined ? serializeBody(c.body, String(c.headers['content-type'] ?? '')) : undefined;
  if (body !== undefined) headers['content-length'] = String(body.length);
  else if (c.method !== 'GET' && c.method !== 'HEAD') headers['content-length'] = '0';
  return {
    tls: c.tls === true,
    host: dialAddress(c.localAddress),
    port,
    method: c.method,
    path: c.url,
    headers,
    body,
    bodyReplayed: body !== undefined || !hadBody,
  };
}

/**
 * Sends the same request again and again over one kept-alive connection. The client is lean on
 * purpose: the socket, its parser and the agent are made during warm-up and reused, the options
 * object is built once, and responses are drained without being kept, so that what the client
 * allocates per iteration is garbage by the next full GC and never counts against the route.
 */
export class ReplayClient {
  private readonly agent: http.Agent;
  private readonly options: https.RequestOptions;
  private readonly mod: typeof http | typeof https;

  constructor(private readonly plan: ReplayPlan, private readonly timeoutMs: number) {
    this.mod = plan.tls ? https : http;
    this.agent = plan.tls
      ? new https.Agent({ keepAlive: true, maxSockets: 1, rejectUnauthorized: false })
      : new http.Agent({ keepAlive: true, maxSockets: 1 });
    const hostHeader = plan.headers.host;
    this.options = {
      host: plan.host,
      port: plan.port,
      method: plan.method,
      path: plan.path,
      headers: plan.headers,
      agent: this.agent,
      ...(plan.tls ? { servername: typeof hostHeader === 'string' ? hostHeader.replace(/:\d+$/, '') : undefined, rejectUnauthorized: false } : {}),
    };
  }

  /**
   * One request; resolves with the status code once the response has been fully read. A kept-alive
   * connection the server closed while the probe blocked the event loop (a snapshot takes
   * seconds; servers close idle connections after 5 s) is retried once on a new connection.
   */
  async send(): Promise<number> {
    try {
      return await this.once();
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code === 'ECONNRESET' || code === 'EPIPE') return this.once();
      throw e;
    }
  }

  private once(): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const req = this.mod.request(this.options, (res) => {
        res.on('data', noop);
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      });
      req.setTimeout(this.timeoutMs, () => req.destroy(new Error(`the replayed request got no answer within ${this.timeoutMs} ms`)));
      req.once('error', reject);
      if (this.plan.body !== undefined) req.end(this.plan.body); else req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function noop(): void { /* drain */ }
