import v8 from 'node:v8';
import os from 'node:os';

/** What the Environment status page shows. */
export interface EnvironmentInfo {
  node: string;
  v8: string;
  versions: Record<string, string>;
  platform: string;
  arch: string;
  pid: number;
  uptimeSeconds: number;
  execArgv: string[];
  /** Only NODE_OPTIONS and NODE_ENV: other variables may hold secrets. */
  nodeOptions: string | null;
  nodeEnv: string | null;
  /** V8 flags that change memory behaviour, read from execArgv and NODE_OPTIONS. */
  memoryFlags: string[];
  heap: { heapSizeLimit: number; totalAvailableSize: number; mallocedMemory: number; peakMallocedMemory: number; numberOfNativeContexts: number; numberOfDetachedContexts: number };
  /** Whether `gc` is reachable on globalThis (started with --expose-gc). */
  exposeGc: boolean;
  cpus: number;
  totalMemory: number;
  freeMemory: number;
  /** The cgroup memory limit when one is set (containers), else null. */
  constrainedMemory: number | null;
}

const MEMORY_FLAG = /^--(max-old-space-size|max-semi-space-size|max-heap-size|expose-gc|heapsnapshot|heap-prof|inspect|trace-gc|optimize-for-size|gc-interval|max-young|initial-old|initial-heap|stack-size|jitless|single-threaded)/;

/**
 * Node, V8 and process facts that bear on memory (Apache::Status's "Environment").
 *
 * @example
 * ```ts
 * environment().heap.heapSizeLimit; // e.g. 4345298944
 * ```
 */
export function environment(): EnvironmentInfo {
  const hs = v8.getHeapStatistics();
  const nodeOptions = process.env.NODE_OPTIONS ?? null;
  const flags = [...process.execArgv, ...(nodeOptions ? nodeOptions.split(/\s+/) : [])].filter((a) => MEMORY_FLAG.test(a));
  const constrained = (process as { constrainedMemory?: () => number | undefined }).constrainedMemory?.();
  const versions: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.versions)) if (typeof v === 'string') versions[k] = v;
  return {
    node: process.version,
    v8: process.versions.v8,
    versions,
    platform: process.platform,
    arch: process.arch,
    pid: process.pid,
    uptimeSeconds: process.uptime(),
    execArgv: [...process.execArgv],
    nodeOptions,
    nodeEnv: process.env.NODE_ENV ?? null,
    memoryFlags: flags,
    heap: {
      heapSizeLimit: hs.heap_size_limit,
      totalAvailableSize: hs.total_available_size,
      mallocedMemory: hs.malloced_memory,
      peakMallocedMemory: hs.peak_malloced_memory,
      numberOfNativeContexts: hs.number_of_native_contexts,
      numberOfDetachedContexts: hs.number_of_detached_contexts,
    },
    exposeGc: typeof (globalThis as { gc?: unknown }).gc === 'function',
    cpus: typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length,
    totalMemory: os.totalmem(),
    freeMemory: os.freemem(),
    // Node reports 0 or a huge number when no limit is set.
    constrainedMemory: constrained && constrained > 0 && constrained < 2 ** 60 ? constrained : null,
  };
}
