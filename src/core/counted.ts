import { ServerResponse } from 'node:http';
import type { Recorder, RouteStats } from './recorder';

/** A connection, as far as counting needs one. */
interface CountedSocket {
  on?(event: 'close', listener: (this: CountedSocket) => void): unknown;
  server?: unknown;
  destroyed?: boolean;
}

/** A response, as far as settling needs one. */
interface CountedResponse {
  socket?: unknown;
  statusCode?: number;
  writableEnded?: boolean;
  writableFinished?: boolean;
}

/** `begin()`: the request is counted; it ends by itself. */
export const COUNTED = 0;
/** `begin()`: time this request (its route's one in sampleEvery). */
export const TIMED = 1;
/** `begin()`: this response cannot be counted here; time it, sampled process-wide. */
export const UNCOUNTABLE = 2;

/**
 * Ends counted requests (production mode, see Recorder.countsNext) without any per-request
 * listener, timer or allocation.
 *
 * Over one HTTP/1 connection, responses go out in order: when a request's response holds the
 * connection, the response before it on that connection has finished. So a counted request is
 * parked on its connection (the response and its route, under our symbols), and settled when the
 * next request arrives on that connection, when the connection closes (then, as with a response's
 * `'close'`, a response not ended counts as aborted), or, for a connection left idle, by a sweep
 * before anything reads the counts (`Recorder.settle()`: the in-flight count, the API, the
 * dashboard, the metrics, the detector's checkpoints). A timer would cost every request a share
 * of its ticks, and nothing reads the counts between the readers.
 *
 * The connection's `'close'` listener is added once per connection, not once per response: a
 * listener on every response cost ~640–1,360 CPU instructions per request inside Node's
 * EventEmitter (callgrind, Fastify `/hello`), and Node's `http.server.response.finish` diagnostics
 * channel cost more still (README, Performance).
 *
 * A parked response stays reachable until it is settled: one per open connection at most, until
 * the next request on it, a reader, or the connection's keep-alive timeout.
 *
 * @example
 * ```ts
 * const counted = new CountedResponses(monitor.recorder, (e) => monitor.fault(e));
 * switch (counted.begin(req.socket, res, stats)) {
 *   case COUNTED: break;                // ends by itself
 *   case TIMED: monitor.start(true); break;
 *   default: monitor.start();
 * }
 * counted.close(); // when the monitor closes
 * ```
 */
export class CountedResponses {
  // Per instance: two monitors on one app keep their requests apart.
  /** On a connection: true while it has our 'close' listener, false when it cannot be counted on. */
  private readonly kWatched = Symbol('leakwatch.counting');
  private readonly kRes = Symbol('leakwatch.counted.response');
  private readonly kStats = Symbol('leakwatch.counted.route');
  /** The open connections that have our 'close' listener: what a sweep looks at. */
  private readonly sockets = new Set<CountedSocket>();
  private readonly onSocketClose: (this: CountedSocket) => void;
  private closed = false;

  constructor(private readonly rec: Recorder, private readonly fault: (e: unknown) => void) {
    const self = this;
    this.onSocketClose = function leakwatchConnectionClose(this: CountedSocket): void {
      const sock = this as CountedSocket & Record<symbol, unknown>;
      sock[self.kWatched] = false;
      self.sockets.delete(sock);
      const res = sock[self.kRes] as CountedResponse | undefined;
      if (res === undefined) return;
      // Ended, even if not all flushed, as a response's 'close' would say.
      self.end(sock, res, res.writableEnded !== true);
    };
    // Run from getters and endpoints: never throws.
    rec.settler = () => { try { this.sweep(); } catch (e) { fault(e); } };
  }

  /**
   * Settles the connection's previous counted request, then says what to do with this one on
   * `stats`'s route: COUNTED (parked here, nothing else to do), TIMED (this route's one in
   * sampleEvery, see Recorder.countsNext) or UNCOUNTABLE (not a live Node http connection, or a
   * response queued behind another: time it as dev mode would).
   */
  begin(sock: unknown, res: unknown, stats: RouteStats): number {
    if (this.closed) return UNCOUNTABLE;
    const s = sock as (CountedSocket & Record<symbol, unknown>) | null | undefined;
    if (s === null || s === undefined) return UNCOUNTABLE;
    let watched = s[this.kWatched];
    if (watched === undefined) {
      // Once per connection: an HTTP/1 response on one of a Node http server's connections
      // (light-my-request's fake sockets have no server; HTTP/2 streams share one), still open,
      // so that its 'close' is still to come.
      watched = res instanceof ServerResponse && s.server !== undefined && s.destroyed !== true && typeof s.on === 'function';
      if (watched) {
        s.on!('close', this.onSocketClose);
        this.sockets.add(s);
      }
      s[this.kWatched] = watched;
    }
    // A response queued behind another (pipelining) has no socket yet.
    if (watched !== true || (res as CountedResponse).socket !== sock) return UNCOUNTABLE;
    const prev = s[this.kRes] as CountedResponse | undefined;
    const prevStats = s[this.kStats] as RouteStats;
    let how = TIMED;
    if (this.rec.countsNext(stats)) {
      this.rec.startCounted();
      s[this.kRes] = res;
      s[this.kStats] = stats;
      how = COUNTED;
    } else if (prev !== undefined) {
      s[this.kRes] = undefined;
    }
    // This response holds the connection, so the one before it has finished.
    if (prev !== undefined) this.finish(prevStats, prev, false);
    return how;
  }

  /**
   * Settles the counted request parked on `sock`, when `res` holds the connection (so that one
   * has finished), without parking anything: for a request that will be timed whatever it is.
   */
  release(sock: unknown, res: unknown): void {
    const s = sock as Record<symbol, unknown> | null | undefined;
    if (s === null || s === undefined || (res as CountedResponse).socket !== sock) return;
    const prev = s[this.kRes] as CountedResponse | undefined;
    if (prev !== undefined) this.end(s, prev, false);
  }

  /** Settles the counted requests whose responses have finished on connections now idle. */
  sweep(): void {
    try {
      for (const s of this.sockets) {
        const sock = s as CountedSocket & Record<symbol, unknown>;
        const res = sock[this.kRes] as CountedResponse | undefined;
        if (res !== undefined && res.writableFinished === true) this.end(sock, res, false);
      }
    } catch (e) {
      this.fault(e);
    }
  }

  /** Stops counting: settles what it can, and parks nothing from now on. */
  close(): void {
    if (this.closed) return;
    this.sweep();
    this.closed = true;
    this.rec.settler = undefined;
  }

  /** Takes the connection's parked request off it and ends it. */
  private end(sock: Record<symbol, unknown>, res: CountedResponse, aborted: boolean): void {
    // The route stays behind under kStats: the table keeps it alive anyway.
    sock[this.kRes] = undefined;
    this.finish(sock[this.kStats] as RouteStats, res, aborted);
  }

  private finish(stats: RouteStats, res: CountedResponse, aborted: boolean): void {
    const active = this.rec.active;
    try {
      this.rec.finishCounted(stats, aborted ? 0 : (res as ServerResponse).statusCode, aborted);
    } catch (e) {
      // Never into the host's request or a socket's event; and not left in flight, which probes
      // drain on.
      if (active > 0 && this.rec.active === active) this.rec.abandon();
      this.fault(e);
    }
  }
}
