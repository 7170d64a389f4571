import type { IncomingMessage } from 'node:http';

/** True when the client socket is on the loopback range (127.0.0.0/8, ::1, ::ffff:127.x). */
export function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  if (address === '::1') return true;
  const v4 = address.startsWith('::ffff:') ? address.slice(7) : address;
  return v4.startsWith('127.');
}

/**
 * Judged by the socket address alone: a header such as X-Forwarded-For is set by the client
 * and would let anyone claim to be local.
 */
export function isLoopbackRequest(req: IncomingMessage): boolean {
  return isLoopbackAddress(req.socket?.remoteAddress);
}
