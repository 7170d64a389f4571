import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import type { FirstSnapshotSummary, SecondSnapshotAnalysis } from './heapsnapshot';

/**
 * Taking a snapshot costs far more memory than the heap itself: MEASURING.md §6 measured +650 to
 * +875 MB of RSS for a 50 MB heap, and we measured +700 MB for a 66 MB one here (V8 builds the
 * whole object graph in C++ before it writes a byte). Hence the factor below, with a margin.
 */
export const SNAPSHOT_MEMORY_FACTOR = 16;
const SNAPSHOT_MEMORY_BASE = 64 * 1024 * 1024;

/** Thrown when a snapshot would risk the process: the HTTP API answers 507 with its message. */
export class SnapshotRefusedError extends Error {
  constructor(readonly neededBytes: number, readonly availableBytes: number) {
    super(`not enough free memory for a heap snapshot: it needs about ${mb(neededBytes)} (${SNAPSHOT_MEMORY_FACTOR}× the ${mb(neededBytes / SNAPSHOT_MEMORY_FACTOR)} heap), `
      + `only ${mb(availableBytes)} is available; retry with "objects": false for bytes and verdict only`);
    this.name = 'SnapshotRefusedError';
  }
}

function mb(n: number): string {
  return `${Math.round(n / 1048576)} MB`;
}

function readNumber(file: string): number | undefined {
  try {
    const t = fs.readFileSync(file, 'utf8').trim();
    if (t === 'max') return undefined;
    const v = Number(t);
    return Number.isFinite(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Memory the process may still use: MemAvailable, the cgroup limit, whichever is lower. */
export function availableMemory(): number {
  let avail = os.freemem();
  try {
    const m = /MemAvailable:\s+(\d+) kB/.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) avail = Number(m[1]) * 1024;
  } catch { /* not Linux */ }
  const max = readNumber('/sys/fs/cgroup/memory.max') ?? readNumber('/sys/fs/cgroup/memory/memory.limit_in_bytes');
  const cur = readNumber('/sys/fs/cgroup/memory.current') ?? readNumber('/sys/fs/cgroup/memory/memory.usage_in_bytes');
  // cgroup v1 reports "no limit" as a huge number.
  if (max !== undefined && cur !== undefined && max < 2 ** 60) avail = Math.min(avail, Math.max(0, max - cur));
  return avail;
}

/** Throws SnapshotRefusedError unless there is room for a snapshot of the current heap. */
export function checkSnapshotMemory(available = availableMemory()): void {
  const heap = v8.getHeapStatistics().used_heap_size;
  const need = heap * SNAPSHOT_MEMORY_FACTOR + SNAPSHOT_MEMORY_BASE;
  if (need > available) throw new SnapshotRefusedError(need, available);
}

let seq = 0;

/**
 * Writes a snapshot to a temporary file. `v8.writeHeapSnapshot` streams from C++ straight to the
 * file, so no chunk of it ever becomes a JS string in the measured heap (the inspector's
 * `takeHeapSnapshot` hands every chunk to JS).
 */
export function writeSnapshot(tag: string): string {
  const file = path.join(os.tmpdir(), `leakwatch-${process.pid}-${Date.now()}-${++seq}-${tag}.heapsnapshot`);
  return v8.writeHeapSnapshot(file);
}

export function removeQuietly(file: string | undefined): void {
  if (file === undefined) return;
  try { fs.unlinkSync(file); } catch { /* already gone */ }
}

function runWorker<T>(task: Record<string, unknown>, timeoutMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const worker = new Worker(path.join(__dirname, 'snapshotWorker.js'), { workerData: task });
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      void worker.terminate();
      reject(new Error(`parsing the heap snapshot took longer than ${timeoutMs} ms`));
    }, timeoutMs);
    timer.unref();
    worker.once('message', (m: { ok: boolean; result?: T; error?: string }) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      if (m.ok) resolve(m.result as T); else reject(new Error(`heap snapshot parse failed: ${m.error}`));
    });
    worker.once('error', (e) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(e);
    });
    worker.once('exit', (code) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      reject(new Error(`heap snapshot parser exited with code ${code}`));
    });
  });
}

/** Parses both snapshots in worker threads: the first for its max id only, then the second above it. */
export async function diffSnapshots(first: string, second: string, timeoutMs: number): Promise<{ first: FirstSnapshotSummary; second: SecondSnapshotAnalysis }> {
  const a = await runWorker<FirstSnapshotSummary>({ kind: 'first', file: first }, timeoutMs);
  const b = await runWorker<SecondSnapshotAnalysis>({ kind: 'second', file: second, boundaryId: a.maxId }, timeoutMs);
  return { first: a, second: b };
}
