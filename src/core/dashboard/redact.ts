/** Headers whose values are credentials: never shown on a page, whatever their case. */
const SECRET = /^(authorization|proxy-authorization|cookie|set-cookie|x-api-key|api-key|x-auth-token|x-access-token|x-csrf-token|x-xsrf-token|x-amz-security-token)$|(^|-)(token|secret|password|passwd|session|signature|credential|key)s?($|-)/i;

export const REDACTED = '[redacted]';

/**
 * Copies request headers with credential-bearing values replaced, for display of a captured
 * request. The captured request itself is left untouched: the probe replays it.
 *
 * @example
 * ```ts
 * redactHeaders({ authorization: 'Bearer x', accept: '*\/*' });
 * // { authorization: '[redacted]', accept: '*\/*' }
 * ```
 */
export function redactHeaders(headers: Record<string, string | string[] | undefined>): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const name of Object.keys(headers)) {
    const v = headers[name];
    if (v === undefined) continue;
    out.push([name, SECRET.test(name) ? REDACTED : Array.isArray(v) ? v.join(', ') : String(v)]);
  }
  return out;
}

/** True if a header name is one whose value is redacted. */
export function isSecretHeader(name: string): boolean {
  return SECRET.test(name);
}

/**
 * Removes credentials from a URL's query string (`?token=…`, `?api_key=…`) for display.
 *
 * @example
 * ```ts
 * redactUrl('/a?token=abc&x=1'); // "/a?token=[redacted]&x=1"
 * ```
 */
export function redactUrl(url: string): string {
  const q = url.indexOf('?');
  if (q < 0) return url;
  const parts = url.slice(q + 1).split('&').map((kv) => {
    const eq = kv.indexOf('=');
    const name = eq < 0 ? kv : kv.slice(0, eq);
    let decoded = name;
    try { decoded = decodeURIComponent(name); } catch { /* keep raw */ }
    return eq >= 0 && /token|secret|password|passwd|api[-_]?key|auth|session|signature|credential/i.test(decoded) ? `${name}=${REDACTED}` : kv;
  });
  return url.slice(0, q + 1) + parts.join('&');
}
