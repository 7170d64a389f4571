import vm from 'node:vm';

/**
 * Globals Node itself defines (20 through 24). ECMAScript's own come from a fresh vm context at
 * run time, so they always match the running V8.
 */
const NODE_GLOBALS = [
  'global', 'globalThis', 'process', 'Buffer', 'console', 'queueMicrotask', 'structuredClone', 'atob', 'btoa',
  'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'setImmediate', 'clearImmediate',
  'URL', 'URLSearchParams', 'URLPattern', 'DOMException', 'AbortController', 'AbortSignal', 'Event', 'EventTarget', 'CustomEvent',
  'TextEncoder', 'TextDecoder', 'TextEncoderStream', 'TextDecoderStream', 'CompressionStream', 'DecompressionStream',
  'TransformStream', 'TransformStreamDefaultController', 'WritableStream', 'WritableStreamDefaultController',
  'WritableStreamDefaultWriter', 'ReadableStream', 'ReadableStreamDefaultReader', 'ReadableStreamBYOBReader',
  'ReadableStreamBYOBRequest', 'ReadableByteStreamController', 'ReadableStreamDefaultController',
  'ByteLengthQueuingStrategy', 'CountQueuingStrategy', 'BroadcastChannel', 'MessageChannel', 'MessagePort', 'MessageEvent',
  'Blob', 'File', 'Performance', 'PerformanceEntry', 'PerformanceMark', 'PerformanceMeasure', 'PerformanceObserver',
  'PerformanceObserverEntryList', 'PerformanceResourceTiming', 'performance', 'fetch', 'FormData', 'Headers', 'Request',
  'Response', 'crypto', 'Crypto', 'CryptoKey', 'SubtleCrypto', 'navigator', 'Navigator', 'WebSocket', 'CloseEvent',
  'EventSource', 'localStorage', 'sessionStorage', 'Storage', 'WebAssembly', 'Iterator', 'SharedArrayBuffer', 'Atomics',
  // Present in `node -e` and the REPL only.
  'require', 'module', 'exports', '__filename', '__dirname',
];

let standard: Set<string> | undefined;

/** ECMAScript + V8 + Node globals: everything a bare `node` process has. */
export function standardGlobals(): Set<string> {
  if (standard) return standard;
  const names = vm.runInNewContext('Object.getOwnPropertyNames(globalThis)') as string[];
  standard = new Set([...names, ...NODE_GLOBALS]);
  return standard;
}

export interface GlobalRow {
  name: string;
  /** `typeof`, refined: `array`, `Map`, the constructor name of objects, `accessor` for getters. */
  type: string;
  /** Length of strings and arrays, size of Maps and Sets, own-key count of plain objects. */
  size: number | null;
  /** Appeared after leakwatch started. */
  addedAfterStart: boolean;
  /** Routes that were being served when it appeared (from the sampled per-route record). */
  routes: string[];
  /** Looks accidental: appeared while requests were served (the seed's FooA, FooB, …). */
  accidental: boolean;
}

function describe(name: string): { type: string; size: number | null } {
  const d = Object.getOwnPropertyDescriptor(globalThis, name);
  // Reading a getter could run arbitrary host code: report it without calling it.
  if (!d) return { type: 'unknown', size: null };
  if (!('value' in d)) return { type: 'accessor', size: null };
  const v: unknown = d.value;
  if (v === null) return { type: 'null', size: null };
  if (typeof v === 'string') return { type: 'string', size: v.length };
  if (typeof v !== 'object') return { type: typeof v, size: null };
  try {
    if (Array.isArray(v)) return { type: 'array', size: v.length };
    if (v instanceof Map || v instanceof Set) return { type: v instanceof Map ? 'Map' : 'Set', size: v.size };
    const proto = Object.getPrototypeOf(v) as { constructor?: { name?: unknown } } | null;
    const ctor = proto && typeof proto.constructor?.name === 'string' ? proto.constructor.name : 'Object';
    // Counting keys of a proxy or a huge object is bounded by what Object.keys costs; fine on demand.
    return { type: ctor || 'Object', size: Object.keys(v).length };
  } catch {
    return { type: 'object', size: null };
  }
}

const MAX_ROWS = 500;

/**
 * Non-standard properties on `globalThis`, the ones that appeared while requests were being
 * served first: the Node form of the seed's `$$global = 1; ++$global` leak.
 *
 * `addedSinceStart` is the recorder's list of globals that appeared after leakwatch started;
 * `byRoute` maps a global's name to the routes whose sampled requests saw it appear.
 *
 * @example
 * ```ts
 * nonStandardGlobals(['FooA'], new Map([['FooA', ['GET /leak']]]));
 * ```
 */
export function nonStandardGlobals(addedSinceStart: string[], byRoute: Map<string, string[]>): { total: number; standardCount: number; rows: GlobalRow[] } {
  const std = standardGlobals();
  const added = new Set(addedSinceStart);
  const rows: GlobalRow[] = [];
  const names = Object.getOwnPropertyNames(globalThis);
  let standardCount = 0;
  for (const name of names) {
    if (std.has(name)) { standardCount++; continue; }
    if (rows.length >= MAX_ROWS) continue;
    const routes = byRoute.get(name) ?? [];
    const addedAfterStart = added.has(name);
    rows.push({ name, ...describe(name), addedAfterStart, routes, accidental: routes.length > 0 || addedAfterStart });
  }
  rows.sort((a, b) => Number(b.accidental) - Number(a.accidental) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { total: names.length, standardCount, rows };
}
