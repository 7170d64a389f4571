/**
 * A fixed-rate HTTP/1.1 keep-alive GET client with microsecond latencies. autocannon reports
 * latency in whole milliseconds, too coarse for "p99 added < 1 ms", and a fixed rate is what makes
 * CPU time and instruction counts per request comparable between servers (MEASURING.md §9).
 * Connections stay open across runs, so a run's server-side cost holds no connection set-up.
 */
import net from 'node:net';

export interface RateResult {
  /** Responses received. */
  done: number;
  errors: number;
  non2xx: number;
  /** Wall time from the first send to the last response, ms. */
  elapsedMs: number;
  /** Per-request latency in ms (send to last body byte), sorted ascending. */
  latencies: Float64Array;
}

export function quantile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i];
}

interface Conn {
  socket: net.Socket;
  buf: Buffer;
  sentAt: number;
  busy: boolean;
}

interface Run {
  req: Buffer;
  total: number;
  sent: number;
  done: number;
  backlog: number;
  errors: number;
  non2xx: number;
  lat: Float64Array;
  finish: () => void;
}

export class RateClient {
  private conns: Conn[] = [];
  private run: Run | undefined;
  private socketErrors = 0;

  private constructor(private readonly port: number) {}

  /** Opens `connections` keep-alive sockets to 127.0.0.1:port. */
  static async open(port: number, connections = 10): Promise<RateClient> {
    const c = new RateClient(port);
    for (let i = 0; i < connections; i++) await c.connect();
    return c;
  }

  private async connect(): Promise<void> {
    const socket = net.connect(this.port, '127.0.0.1');
    socket.setNoDelay(true);
    await new Promise<void>((resolve, reject) => { socket.once('connect', resolve); socket.once('error', reject); });
    const c: Conn = { socket, buf: Buffer.alloc(0), sentAt: 0, busy: false };
    socket.on('data', (chunk: Buffer) => this.onData(c, chunk));
    socket.on('error', () => { this.socketErrors++; });
    // A connection the server closed is replaced; a request it carried counts as an error.
    socket.on('close', () => { void this.onClose(c); });
    this.conns.push(c);
  }

  private async onClose(c: Conn): Promise<void> {
    const i = this.conns.indexOf(c);
    if (i < 0) return; // closed by us
    this.conns.splice(i, 1);
    const r = this.run;
    if (c.busy && r !== undefined) {
      r.errors++;
      r.lat[r.done++] = NaN;
      if (r.done === r.total) r.finish();
    }
    try { await this.connect(); } catch { return; }
    const fresh = this.conns[this.conns.length - 1];
    if (r !== undefined && this.run === r && r.backlog > 0 && r.sent < r.total) { r.backlog--; this.send(fresh, r); }
  }

  private send(c: Conn, r: Run): void {
    c.busy = true;
    c.sentAt = performance.now();
    c.socket.write(r.req);
    r.sent++;
  }

  private onData(c: Conn, chunk: Buffer): void {
    c.buf = c.buf.length === 0 ? chunk : Buffer.concat([c.buf, chunk]);
    for (;;) {
      const head = c.buf.indexOf('\r\n\r\n');
      if (head < 0) return;
      const headers = c.buf.subarray(0, head).toString('latin1');
      const m = /\r\ncontent-length:\s*(\d+)/i.exec(headers);
      const r = this.run;
      if (!m) { if (r) r.errors++; c.buf = Buffer.alloc(0); c.busy = false; return; } // no chunked bodies expected
      const end = head + 4 + Number(m[1]);
      if (c.buf.length < end) return;
      c.buf = c.buf.subarray(end);
      c.busy = false;
      if (r === undefined) continue;
      const status = Number(headers.slice(9, 12));
      if (status < 200 || status >= 300) r.non2xx++;
      r.lat[r.done++] = performance.now() - c.sentAt;
      if (r.done === r.total) { r.finish(); return; }
      if (r.backlog > 0 && r.sent < r.total) { r.backlog--; this.send(c, r); }
    }
  }

  /**
   * Sends `total` GETs of `path` at `rate` requests/s. Requests leave on a fixed schedule; one
   * whose slot comes while every connection is busy leaves as soon as one frees up, so the server
   * is never offered more than `connections` at once.
   */
  async get(path: string, opts: { rate: number; total: number; timeoutMs?: number }): Promise<RateResult> {
    let finish!: () => void;
    const all = new Promise<void>((r) => { finish = r; });
    const r: Run = {
      req: Buffer.from(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: keep-alive\r\n\r\n`),
      total: opts.total, sent: 0, done: 0, backlog: 0, errors: 0, non2xx: 0,
      lat: new Float64Array(opts.total), finish,
    };
    this.run = r;
    const errors0 = this.socketErrors;
    const start = performance.now();
    const interval = 1000 / opts.rate;
    const tick = (): void => {
      const due = Math.min(r.total, Math.floor((performance.now() - start) / interval) + 1);
      while (r.sent + r.backlog < due) {
        const c = this.conns.find((x) => !x.busy);
        if (c === undefined) { r.backlog = due - r.sent; break; }
        this.send(c, r);
      }
    };
    tick();
    const timer = setInterval(tick, Math.max(1, Math.min(10, interval)));
    const timeout = setTimeout(finish, opts.timeoutMs ?? Math.max(30_000, (opts.total / opts.rate) * 5000));
    await all;
    clearInterval(timer);
    clearTimeout(timeout);
    this.run = undefined;
    const elapsedMs = performance.now() - start;
    // A run that timed out leaves requests in flight: drop those connections for fresh ones.
    if (r.done < r.total) {
      const stale = this.conns.filter((c) => c.busy);
      this.conns = this.conns.filter((c) => !c.busy);
      for (const c of stale) { c.socket.destroy(); await this.connect(); }
      r.done = Math.min(r.done, r.total);
    }
    return {
      done: r.done,
      errors: r.errors + (r.total - r.done) + (this.socketErrors - errors0),
      non2xx: r.non2xx,
      elapsedMs,
      latencies: r.lat.slice(0, r.done).filter((x) => !Number.isNaN(x)).sort(),
    };
  }

  close(): void {
    const conns = this.conns;
    this.conns = [];
    for (const c of conns) c.socket.destroy();
  }
}
