/** A socket, as far as the watch below needs one. */
export interface WatchedSocket {
  on?(event: 'close', listener: (this: WatchedSocket) => void): unknown;
}

/**
 * Ends the requests that Node queued behind another one on the same connection (HTTP pipelining)
 * when that connection drops.
 *
 * A response that arrives while an earlier one still holds its socket waits in the server's queue,
 * without a socket (`res.socket === null`). If the client goes away then, Node destroys the requests
 * but never emits `'close'` (nor `'finish'`) on the queued responses, so a request recorded from
 * its response's end would stay in flight for good, and checkpoints and probes wait for the
 * in-flight count to drain. Such responses are listed on their socket, which gets one `'close'`
 * listener, and that listener ends whichever of them are still pending. Ordinary requests (the
 * socket already assigned) never come here: the adapters check `res.socket` and go on.
 *
 * @example
 * ```ts
 * const queued = new QueuedResponses((res) => onResponseDone.call(res), (res) => pending.has(res), (e) => monitor.fault(e));
 * if (res.socket === null) queued.watch(req.socket, res);
 * ```
 */
export class QueuedResponses {
  // Per instance: two monitors on one app (two adapters mounted) keep apart.
  private readonly kList = Symbol('leakwatch.queued');
  /** The socket's 'close' listener, one per instance: `this` is the socket. */
  private readonly sweep: (this: WatchedSocket) => void;

  /**
   * `end(res)` records a response's end as the adapter's own listener would; `pending(res)` says
   * whether it is still waiting for that.
   */
  constructor(
    private readonly end: (res: object) => void,
    private readonly pending: (res: object) => boolean,
    /** Where a fault of the two goes: this runs in a socket's listener, which must never throw. */
    private readonly fault: (e: unknown) => void,
  ) {
    const self = this;
    this.sweep = function sweep(this: WatchedSocket): void { self.drop(this); };
  }

  /** Lists `res`, queued on `sock`, to be ended if `sock` closes first. */
  watch(sock: WatchedSocket | null | undefined, res: object): void {
    if (sock == null || typeof sock !== 'object' || typeof sock.on !== 'function') return;
    const s = sock as Record<symbol, object[] | undefined>;
    let list = s[this.kList];
    if (list === undefined) {
      list = [];
      s[this.kList] = list;
      sock.on('close', this.sweep);
    }
    // Those that ended meanwhile go first: a long pipelining connection keeps its list short.
    let n = 0;
    for (const r of list) if (this.pending(r)) list[n++] = r;
    list.length = n;
    list.push(res);
  }

  /** Ends each response still pending on `sock`, which closed. */
  drop(sock: WatchedSocket): void {
    const s = sock as Record<symbol, object[] | undefined>;
    const list = s[this.kList];
    if (list === undefined) return;
    s[this.kList] = undefined;
    for (const res of list) {
      try { if (this.pending(res)) this.end(res); } catch (e) { this.fault(e); }
    }
  }
}
