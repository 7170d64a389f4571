import type { IncomingMessage, ServerResponse } from 'node:http';

/** No inline script is allowed; the dashboard's own script and style are served from `{path}/assets`. */
export const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

function baseHeaders(res: ServerResponse): void {
  res.setHeader('Content-Security-Policy', CSP);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Cache-Control', 'no-store');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('X-Frame-Options', 'DENY');
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) { res.end(); return; }
  const text = JSON.stringify(body);
  baseHeaders(res);
  res.statusCode = status;
  res.setHeader('Content-Type', 'application/json; charset=utf-8');
  res.setHeader('Content-Length', Buffer.byteLength(text));
  if (headers) for (const k of Object.keys(headers)) res.setHeader(k, headers[k]);
  res.end(text);
}

export function sendError(res: ServerResponse, status: number, message: string, headers?: Record<string, string>): void {
  sendJson(res, status, { error: message }, headers);
}

export function sendText(res: ServerResponse, status: number, contentType: string, body: string | Buffer, headers?: Record<string, string>): void {
  if (res.writableEnded || res.destroyed) return;
  if (res.headersSent) { res.end(); return; }
  baseHeaders(res);
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Content-Length', typeof body === 'string' ? Buffer.byteLength(body) : body.length);
  if (headers) for (const k of Object.keys(headers)) res.setHeader(k, headers[k]);
  res.end(body);
}

/** An error with an HTTP status; anything else thrown in a handler is a 500. */
export class HttpError extends Error {
  constructor(readonly status: number, message: string, readonly headers?: Record<string, string>) {
    super(message);
  }
}

// After a 413 the rest of an oversized body is not worth reading: the connection is closed.
const CLOSE = { Connection: 'close' };

/**
 * Reads a request body up to `limit` bytes; past it, a 413. Always settles: a stream that was
 * already read by someone else yields '', and a client that goes away mid-body yields a 400
 * (nobody will read that answer, but the handler's promise must not hang).
 *
 * @example
 * ```ts
 * const text = await readBody(req, 64 * 1024);
 * ```
 */
export function readBody(req: IncomingMessage, limit: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > limit) {
      reject(new HttpError(413, `request body is ${declared} bytes; the limit is ${limit}`, CLOSE));
      req.resume();
      return;
    }
    if (req.readableEnded) { resolve(''); return; }
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const onData = (c: Buffer | string) => {
      if (done) return;
      const b = typeof c === 'string' ? Buffer.from(c) : c;
      size += b.length;
      if (size > limit) {
        done = true;
        chunks.length = 0;
        reject(new HttpError(413, `request body exceeds the limit of ${limit} bytes`, CLOSE));
        return;
      }
      chunks.push(b);
    };
    const cleanup = () => {
      req.removeListener('end', onEnd);
      req.removeListener('error', onError);
      req.removeListener('close', onClose);
    };
    const onEnd = () => {
      cleanup();
      if (!done) { done = true; resolve(Buffer.concat(chunks).toString('utf8')); }
    };
    const onError = (e: Error) => {
      cleanup();
      if (!done) { done = true; reject(new HttpError(400, `could not read the request body: ${e.message}`)); }
    };
    const onClose = () => {
      cleanup();
      if (!done) { done = true; reject(new HttpError(400, 'the client closed the connection before the body was complete')); }
    };
    // The data listener stays after a 413 so the rest of the body is drained, not buffered.
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('close', onClose);
  });
}
