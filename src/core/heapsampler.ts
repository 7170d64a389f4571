import inspector from 'node:inspector';

/**
 * V8's sampling heap profiler, kept to live objects only, shared by every monitor of the process.
 *
 * Why this and not heap deltas: it charges each sampled object to the JS stack that allocated it
 * and forgets the sample when the object is collected, so what it reports after a full GC is what
 * each stack keeps, whatever else ran at the same time (MEASURING.md §5: 1,005 / 124 / 0 B per
 * request for routes keeping 1,000 / 100 / 0 B under 10 concurrent connections). Routes are told
 * apart by the trampolines of `attribution.ts`, whose names carry a route id.
 *
 * One profiler per isolate: V8 refuses a second `startSampling`, so monitors share this one and
 * the first one's interval wins. If something else (DevTools, another profiler) already samples,
 * `acquire` fails and the feature stays off for this process.
 */

/** The function-name prefix of route trampolines, followed by the route id. */
export const TRAMPOLINE_PREFIX = 'leakwatch$route$';
/** The frame probe replays run under (see attribution.ts): nothing below it is charged. */
export const REPLAY_FRAME = 'leakwatch$probeReplay';

/** Live sampled bytes charged to one route id. */
export interface SampledLevel {
  bytes: number;
}

interface ProfileNode {
  callFrame: { functionName: string };
  selfSize: number;
  id: number;
  children: ProfileNode[];
}
interface Profile {
  head: ProfileNode;
}

let session: inspector.Session | undefined;
let users = 0;
let interval = 0;
let failed = false;

function post<T>(method: string, params?: Record<string, unknown>): T {
  // A same-thread inspector session answers synchronously, inside post() (checked in
  // test/core/heapsampler.test.ts): the caller can read the profile while it holds the gate.
  let out: { err: Error | null; res: T } | undefined;
  session!.post(method, params ?? {}, (err, res) => { out = { err, res: res as T }; });
  if (out === undefined) throw new Error(`inspector ${method} did not answer synchronously`);
  if (out.err) throw out.err;
  return out.res;
}

/**
 * Starts the profiler if nobody has (refcounted). Returns false when it cannot run here.
 *
 * @example
 * ```ts
 * if (heapSampler.acquire(8192)) { const levels = heapSampler.read(); heapSampler.release(); }
 * ```
 */
function acquire(bytes: number): boolean {
  if (failed) return false;
  if (users > 0) { users++; return true; }
  try {
    session = new inspector.Session();
    session.connect();
    post('HeapProfiler.startSampling', {
      samplingInterval: bytes,
      includeObjectsCollectedByMajorGC: false,
      includeObjectsCollectedByMinorGC: false,
    });
    interval = bytes;
    users = 1;
    return true;
  } catch {
    failed = true;
    try { session?.disconnect(); } catch { /* already gone */ }
    session = undefined;
    return false;
  }
}

function release(): void {
  if (users === 0) return;
  users--;
  if (users > 0) return;
  try { post('HeapProfiler.stopSampling'); } catch { /* session gone */ }
  try { session?.disconnect(); } catch { /* already gone */ }
  session = undefined;
  interval = 0;
}

/**
 * Live sampled bytes per route id, right now. Read it after a full GC: before one, objects that
 * died but were not collected yet still count. Costs a few ms (the whole profile is serialised).
 */
function read(): Map<number, SampledLevel> {
  const out = new Map<number, SampledLevel>();
  if (users === 0) return out;
  const { profile } = post<{ profile: Profile }>('HeapProfiler.getSamplingProfile');
  // Iterative walk: stacks can be deep. Bytes under a trampoline belong to it, down to any nested
  // trampoline (a route handler that calls another route's handler directly).
  const stack: Array<[ProfileNode, number]> = [[profile.head, -1]];
  while (stack.length > 0) {
    const [node, inherited] = stack.pop()!;
    let route = inherited;
    const name = node.callFrame.functionName;
    if (name.startsWith(TRAMPOLINE_PREFIX)) {
      const id = Number(name.slice(TRAMPOLINE_PREFIX.length));
      if (Number.isInteger(id)) route = id;
    } else if (name === REPLAY_FRAME) {
      route = -1;
    }
    if (route >= 0 && node.selfSize > 0) {
      const l = out.get(route);
      if (l === undefined) out.set(route, { bytes: node.selfSize }); else l.bytes += node.selfSize;
    }
    for (const c of node.children) stack.push([c, route]);
  }
  return out;
}

/** The process-wide sampler: `acquire`, `read`, `release`, and the interval in use (0 when off). */
export const heapSampler = {
  acquire,
  release,
  read,
  get interval(): number { return interval; },
  get active(): boolean { return users > 0; },
};
