import { performance } from 'node:perf_hooks';

/** The longest a gate may stay closed: one hour (setTimeout's own limit is about 24.8 days). */
export const MAX_CLOSE_MS = 3_600_000;

/**
 * The isolation gate: while it is closed, new requests wait at the door so that a checkpoint or a
 * probe sees the process alone. It always reopens: every close has a deadline, so no request can
 * wait forever even if its owner forgets or crashes.
 *
 * @example
 * ```ts
 * const token = monitor.gate.close(5_000); // undefined if someone else holds it
 * try { await measureAlone(); } finally { if (token) monitor.gate.open(token); }
 * // adapters: const wait = monitor.gate.admit(); if (wait) await wait;
 * ```
 */
export class Gate {
  private waiting: Array<() => void> = [];
  private closedUntil = 0;
  private timer: NodeJS.Timeout | undefined;
  private owner: symbol | undefined;
  /** How many requests have been held, in total, and the longest hold in ms. */
  held = 0;
  longestHoldMs = 0;
  private closedAt = 0;

  get closed(): boolean {
    return this.owner !== undefined;
  }

  /**
   * Undefined when the gate is open (the fast path allocates nothing); otherwise a promise that
   * resolves when it reopens.
   */
  admit(): Promise<void> | undefined {
    if (this.owner === undefined) return undefined;
    this.held++;
    return new Promise<void>((resolve) => { this.waiting.push(resolve); });
  }

  /** Closes the gate for at most `maxMs`. Returns a token to reopen it, or undefined if already closed. */
  close(maxMs: number): symbol | undefined {
    if (this.owner !== undefined) return undefined;
    // setTimeout fires at once (with a process warning) past 2^31-1 ms and treats NaN as 1 ms:
    // clamp, so a bad figure neither warns in the host's logs nor holds requests unbounded.
    maxMs = Number.isFinite(maxMs) ? Math.min(Math.max(0, maxMs), MAX_CLOSE_MS) : MAX_CLOSE_MS;
    const token = Symbol('gate');
    this.owner = token;
    this.closedAt = performance.now();
    this.closedUntil = Date.now() + maxMs;
    this.timer = setTimeout(() => this.open(token), maxMs);
    this.timer.unref();
    return token;
  }

  /** Reopens the gate if `token` still owns it and lets every held request in. */
  open(token: symbol): void {
    if (this.owner !== token) return;
    this.owner = undefined;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const ms = performance.now() - this.closedAt;
    if (this.waiting.length > 0 && ms > this.longestHoldMs) this.longestHoldMs = ms;
    const waiting = this.waiting;
    this.waiting = [];
    for (const resolve of waiting) resolve();
  }

  /**
   * Lets the longest-waiting held request in while the gate stays closed (the owner's deadline
   * still holds). Returns false when the gate is open, `token` does not own it, or nobody waits.
   * The detector uses it to run one request alone between two forced GCs.
   *
   * @example
   * ```ts
   * const token = gate.close(400)!;
   * if (gate.admitOne(token)) { await finished(); }
   * gate.open(token);
   * ```
   */
  admitOne(token: symbol): boolean {
    if (this.owner !== token) return false;
    const resolve = this.waiting.shift();
    if (resolve === undefined) return false;
    resolve();
    return true;
  }

  /** Remaining ms before the current close expires (0 when open). */
  remainingMs(): number {
    return this.owner === undefined ? 0 : Math.max(0, this.closedUntil - Date.now());
  }

  get queued(): number {
    return this.waiting.length;
  }

  dispose(): void {
    if (this.owner !== undefined) this.open(this.owner);
  }
}
