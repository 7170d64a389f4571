import type { Recorder, RouteStats, RequestState } from '../recorder';
import { performance } from 'node:perf_hooks';

/** A process `warning` event, with the routes that were being served when it was raised. */
export interface WarningRecord {
  /** ms since the Unix epoch. */
  at: number;
  name: string;
  message: string;
  code: string | null;
  /** The first frames of the warning's stack: where the listener (or other cause) was added. */
  stack: string[];
  /** Recorded requests in flight when the warning arrived. */
  inFlight: number;
  /** Route keys (`GET /users/:id`) of those requests, filled in as they finish. */
  routes: string[];
}

interface Pending { record: WarningRecord; t: number; left: number; deadline: number }

const MAX_ROUTES_PER_WARNING = 10;
const PENDING_MS = 60_000;

/**
 * Keeps the last process warnings (`MaxListenersExceededWarning` is Node's own sign of a
 * listener-per-request leak) and names the route(s) in flight when each was raised.
 *
 * A route's template is only known when its request finishes, so the warning waits for the
 * requests that were in flight at that moment: each finishing request that started before the
 * warning adds its route. The recorder hook is set only while a warning waits, so the hot path
 * pays nothing the rest of the time.
 *
 * @example
 * ```ts
 * const w = new WarningLog(monitor.recorder, 50);
 * w.records(); // [{ name: 'MaxListenersExceededWarning', routes: ['GET /subscribe'], … }]
 * w.close();
 * ```
 */
export class WarningLog {
  private readonly ring: WarningRecord[] = [];
  private readonly pending: Pending[] = [];
  total = 0;
  private readonly listener = (w: Error): void => { try { this.add(w); } catch { /* never disturb the host */ } };
  private readonly hook = (stats: RouteStats, state: RequestState): void => this.finished(stats, state);

  constructor(private readonly recorder: Recorder, readonly size = 50) {
    process.on('warning', this.listener);
  }

  add(w: Error): void {
    this.total++;
    const record: WarningRecord = {
      at: Date.now(),
      name: String(w?.name ?? 'Warning'),
      message: String(w?.message ?? w).slice(0, 2000),
      code: typeof (w as unknown as { code?: unknown })?.code === "string" ? (w as unknown as { code: string }).code : null,
      // Node's own frames (errors, events) come first and say nothing about the cause.
      stack: String(w?.stack ?? '').split('\n').slice(1).map((l) => l.trim())
        .filter((l) => l.startsWith('at ') && !/\(node:|^at node:/.test(l)).slice(0, 8),
      inFlight: this.recorder.inFlight,
      routes: [],
    };
    this.ring.push(record);
    if (this.ring.length > this.size) this.ring.shift();
    if (record.inFlight > 0 && this.pending.length < this.size) {
      const t = performance.now();
      this.pending.push({ record, t, left: record.inFlight, deadline: t + PENDING_MS });
      this.recorder.onFinish = this.hook;
    }
  }

  private finished(stats: RouteStats, state: RequestState): void {
    const now = performance.now();
    for (let i = this.pending.length - 1; i >= 0; i--) {
      const p = this.pending[i];
      if (state.t0 <= p.t) {
        if (!p.record.routes.includes(stats.key) && p.record.routes.length < MAX_ROUTES_PER_WARNING) p.record.routes.push(stats.key);
        p.left--;
      }
      if (p.left <= 0 || now > p.deadline) this.pending.splice(i, 1);
    }
    if (this.pending.length === 0 && this.recorder.onFinish === this.hook) this.recorder.onFinish = undefined;
  }

  /** Newest first. */
  records(): WarningRecord[] {
    return this.ring.map((r) => ({ ...r, routes: [...r.routes], stack: [...r.stack] })).reverse();
  }

  close(): void {
    process.off('warning', this.listener);
    if (this.recorder.onFinish === this.hook) this.recorder.onFinish = undefined;
    this.pending.length = 0;
  }
}
