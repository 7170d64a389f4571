import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

// A BlockList compares parsed addresses, so every spelling of loopback matches
// (`0:0:0:0:0:0:0:1`, `::ffff:127.0.0.1`, `::ffff:7f00:1`) and look-alike strings do not.
const loopback = new BlockList();
loopback.addSubnet('127.0.0.0', 8, 'ipv4');
loopback.addAddress('::1', 'ipv6');

/**
 * True when `address` is a loopback address (127.0.0.0/8, ::1, or IPv4-mapped 127.x).
 * Anything that does not parse as an IP address is not loopback: with trust proxy on, the
 * framework's client address comes from a header, and `"127.evil"` must not pass a prefix test.
 *
 * @example
 * ```ts
 * isLoopbackAddress('::ffff:127.0.0.1'); // true
 * isLoopbackAddress('203.0.113.5');      // false
 * ```
 */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (typeof address !== 'string' || address.length === 0 || address.length > 64) return false;
  const family = isIP(address);
  if (family === 0) return false;
  try {
    return loopback.check(address, family === 6 ? 'ipv6' : 'ipv4');
  } catch {
    return false;
  }
}

/**
 * True when a Host header names this machine in a way DNS cannot redirect: `localhost`,
 * `*.localhost`, or an IP address literal (with or without a port). A loopback socket alone is
 * not enough: with DNS rebinding, a page on `evil.example` whose name now resolves to 127.0.0.1
 * talks to the local server as a same-origin page (`Host: evil.example:3000`) and could read the
 * dashboard or download a heap snapshot. A same-host reverse proxy also arrives over loopback,
 * carrying the public name. Node's own inspector applies the same rule.
 *
 * @example
 * ```ts
 * isLocalHostHeader('localhost:3000');     // true
 * isLocalHostHeader('[::1]:3000');         // true
 * isLocalHostHeader('evil.example:3000');  // false
 * ```
 */
export function isLocalHostHeader(host: string | undefined): boolean {
  // HTTP/1.0 clients may omit Host; browsers never do, so there is nothing to rebind.
  if (host === undefined || host === '') return true;
  if (host.length > 300 || /[/?#@\\\s]/.test(host)) return false;
  let hostname: string;
  try { hostname = new URL(`http://${host}`).hostname; } catch { return false; }
  if (hostname === 'localhost' || hostname.endsWith('.localhost')) return true;
  const bare = hostname.startsWith('[') && hostname.endsWith(']') ? hostname.slice(1, -1) : hostname;
  return isIP(bare) !== 0;
}

/**
 * Judged by the socket address alone: a header such as X-Forwarded-For is set by the client
 * and would let anyone claim to be local.
 *
 * @example
 * ```ts
 * http.createServer((req, res) => res.end(String(isLoopbackRequest(req))));
 * ```
 */
export function isLoopbackRequest(req: IncomingMessage): boolean {
  return isLoopbackAddress(req.socket?.remoteAddress);
}
