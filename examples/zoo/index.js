'use strict';
// The leak zoo: routes with a known truth, shared by the detection benchmark, the tests and the
// demo. Each leak keeps a known number of bytes per request; each control keeps nothing once
// warm (or a bounded amount), however it behaves on the way there.
//
// Sizes: a one-byte string of n characters built from hex is flat and costs n + 16 bytes on a
// 64-bit V8 heap ('x'.repeat(n) would be a shared rope of a few hundred bytes, whatever n is).
// The truths below were measured in a serial loop, a full GC after each block of 200 calls and a
// least-squares slope over 5,000 calls (measureTruth below; `node examples/zoo/index.js` prints
// them; Node 20.20.2, two runs agreed within 3%).
const { randomBytes } = require('node:crypto');
const { EventEmitter } = require('node:events');

/** A flat one-byte string of exactly `chars` characters (chars must be even). */
function flat(chars) {
  return randomBytes(chars / 2).toString('hex');
}

/** Perl's magic string increment, as in the seed: FooA → FooB … FooZ → FopA. */
function perlIncrement(s) {
  const chars = s.split('');
  let i = chars.length - 1;
  for (;;) {
    const c = chars[i];
    if (c === 'z') { chars[i] = 'a'; } else if (c === 'Z') { chars[i] = 'A'; } else if (c === '9') { chars[i] = '0'; } else {
      chars[i] = String.fromCharCode(c.charCodeAt(0) + 1);
      return chars.join('');
    }
    if (i === 0) {
      const first = c === 'z' ? 'a' : c === 'Z' ? 'A' : '1';
      return first + chars.join('');
    }
    i--;
  }
}

/** A tiny seeded PRNG (mulberry32) so that data-dependent controls replay identically. */
function mulberry32(seed) {
  let a = seed >>> 0;
  return function rng() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- state held by the leaks (module-level, as in real leaks) -------------------------------
let state;
function freshState() {
  return {
    globalName: 'FooA',
    globalsMade: [],
    array: [],
    cache: new Map(),
    cacheSeq: 0,
    intervals: [],
    emitter: new EventEmitter(),
    buffers: [],
    nth: [],
    nthCount: 0,
    forever: new Promise(() => { /* never settles: every .then() on it is kept forever */ }),
    // controls
    lru: new Map(),
    lruSeq: 0,
    lazy: undefined,
    table: [],
    tableRng: mulberry32(7),
    memo: new Map(),
  };
}
state = freshState();

const LRU_CAPACITY = 50;
const TABLE_MAX = 64;
const MEMO_KEYS = 10;

/**
 * @typedef {{ params: Record<string, string>, query: Record<string, unknown> }} ZooInput
 * @typedef {{ name: string, method: 'GET', path: string, kind: 'leak' | 'control',
 *   truthBytesPerRequest: number, truthExternalBytesPerRequest: number, description: string,
 *   handler: (input: ZooInput) => unknown }} Scenario
 */

/** @type {Scenario[]} */
const scenarios = [
  {
    name: 'global-var',
    kind: 'leak',
    truthBytesPerRequest: 90,
    truthExternalBytesPerRequest: 0,
    description: "The seed's $$global = 1; ++$global: a new global FooA, FooB, … on every request.",
    handler() {
      const name = state.globalName;
      globalThis[name] = 1;
      state.globalsMade.push(name);
      state.globalName = perlIncrement(name);
      return { created: name };
    },
  },
  {
    name: 'array-push',
    kind: 'leak',
    truthBytesPerRequest: 1040,
    truthExternalBytesPerRequest: 0,
    description: 'A module-level array that gets one 1 KB flat string per request and is never trimmed.',
    handler() {
      state.array.push(flat(1024));
      return { length: state.array.length };
    },
  },
  {
    name: 'map-cache',
    kind: 'leak',
    truthBytesPerRequest: 2118,
    truthExternalBytesPerRequest: 0,
    description: 'An unbounded Map cache keyed by a per-request id, 2 KB value each.',
    handler() {
      const key = 'req-' + (state.cacheSeq++);
      state.cache.set(key, flat(2048));
      return { size: state.cache.size };
    },
  },
  {
    name: 'interval',
    kind: 'leak',
    truthBytesPerRequest: 1298,
    truthExternalBytesPerRequest: 0,
    description: 'A setInterval per request that is never cleared; its callback holds a 1 KB request context.',
    handler() {
      const ctx = flat(1024);
      const t = setInterval(() => { if (ctx.length === 0) clearInterval(t); }, 3_600_000);
      // unref() does not free it: the timer list still holds the Timeout and its closure.
      t.unref();
      state.intervals.push(t);
      return { timers: state.intervals.length };
    },
  },
  {
    name: 'listener',
    kind: 'leak',
    truthBytesPerRequest: 1146,
    truthExternalBytesPerRequest: 0,
    description: 'An event listener per request on a long-lived EventEmitter (Node warns MaxListenersExceededWarning); it holds a 1 KB context.',
    handler() {
      const ctx = flat(1024);
      state.emitter.on('config-changed', () => ctx.length);
      return { listeners: state.emitter.listenerCount('config-changed') };
    },
  },
  {
    name: 'buffer',
    kind: 'leak',
    truthBytesPerRequest: 185,
    truthExternalBytesPerRequest: 4096,
    description: 'A 4 KB Buffer per request kept in a module-level list: external (ArrayBuffer) memory, barely any JS heap.',
    handler() {
      state.buffers.push(Buffer.alloc(4096, 1));
      return { buffers: state.buffers.length };
    },
  },
  {
    name: 'every-10th',
    kind: 'leak',
    truthBytesPerRequest: 1028,
    truthExternalBytesPerRequest: 0,
    description: 'Leaks 10 KB on every 10th request only (about 1 KB per request on average); the other nine keep nothing.',
    handler() {
      state.nthCount++;
      if (state.nthCount % 10 === 0) state.nth.push(flat(10240));
      return { kept: state.nth.length };
    },
  },
  {
    name: 'pending-promise',
    kind: 'leak',
    truthBytesPerRequest: 1230,
    truthExternalBytesPerRequest: 0,
    description: 'Each request chains .then() on a promise that never settles; the reaction keeps a 1 KB closure forever.',
    handler() {
      const ctx = flat(1024);
      state.forever.then(() => ctx.length);
      return { waiting: true };
    },
  },
  // ---- controls: must never be called growing ----
  {
    name: 'lru',
    kind: 'control',
    truthBytesPerRequest: 0,
    truthExternalBytesPerRequest: 0,
    description: `A bounded LRU (${LRU_CAPACITY} entries of 1 KB, a new key per request): fills up, then stays flat.`,
    handler() {
      const key = 'k' + (state.lruSeq++);
      state.lru.set(key, flat(1024));
      if (state.lru.size > LRU_CAPACITY) state.lru.delete(state.lru.keys().next().value);
      return { size: state.lru.size };
    },
  },
  {
    name: 'lazy-init',
    kind: 'control',
    truthBytesPerRequest: 0,
    truthExternalBytesPerRequest: 0,
    description: 'Builds a 256 KB lookup table on the first request only.',
    handler() {
      if (state.lazy === undefined) {
        state.lazy = [];
        for (let i = 0; i < 256; i++) state.lazy.push(flat(1008));
      }
      return { entries: state.lazy.length };
    },
  },
  {
    name: 'transient',
    kind: 'control',
    truthBytesPerRequest: 0,
    truthExternalBytesPerRequest: 0,
    description: 'Heavy transient allocation: about 1.5 MB of garbage per request, nothing kept.',
    handler() {
      const rows = new Array(20000);
      for (let i = 0; i < rows.length; i++) rows[i] = { i, label: 'row-' + i, even: (i & 1) === 0 };
      let n = 0;
      for (const r of rows) if (r.even) n += r.label.length;
      return { n };
    },
  },
  {
    name: 'grow-shrink',
    kind: 'control',
    truthBytesPerRequest: 0,
    truthExternalBytesPerRequest: 0,
    description: `Data that changes: a table of up to ${TABLE_MAX} rows of 256 B whose size moves at random up and down (bounded).`,
    handler() {
      const step = Math.floor(state.tableRng() * 17) - 8;
      const target = Math.max(0, Math.min(TABLE_MAX, state.table.length + step));
      while (state.table.length < target) state.table.push(flat(256));
      if (state.table.length > target) state.table.length = target;
      return { rows: state.table.length };
    },
  },
  {
    name: 'memo',
    kind: 'control',
    truthBytesPerRequest: 0,
    truthExternalBytesPerRequest: 0,
    description: `Memoization over a small key set (?n=0..${MEMO_KEYS - 1}), 1 KB per key: flat once every key was seen.`,
    handler(input) {
      const n = Math.abs(Number.parseInt(String(input.query.n ?? '0'), 10) || 0) % MEMO_KEYS;
      let v = state.memo.get(n);
      if (v === undefined) { v = flat(1024); state.memo.set(n, v); }
      return { n, digest: v.slice(0, 8) };
    },
  },
  {
    name: 'hello',
    path: '/zoo/hello/:name',
    kind: 'control',
    truthBytesPerRequest: 0,
    truthExternalBytesPerRequest: 0,
    description: 'A no-op: GET /zoo/hello/:name answers a greeting.',
    handler(input) {
      return { hello: String(input.params.name ?? '') };
    },
  },
];
for (const s of scenarios) {
  s.method = 'GET';
  if (s.path === undefined) s.path = '/zoo/' + s.name;
}

/** Registers every scenario on an Express 4/5 app or router. */
function mountExpress(app) {
  for (const s of scenarios) {
    app.get(s.path, function zooExpressRoute(req, res) {
      res.json(s.handler({ params: req.params || {}, query: req.query || {} }));
    });
  }
  return app;
}

/** Registers every scenario on a Fastify 5 instance. */
function mountFastify(fastify) {
  for (const s of scenarios) {
    fastify.get(s.path, async function zooFastifyRoute(request) {
      return s.handler({ params: request.params || {}, query: request.query || {} });
    });
  }
  return fastify;
}

/** A concrete URL to request for a scenario (fills :params and query). `rng` returns [0, 1). */
function sample(scenario, rng = Math.random) {
  if (scenario.name === 'hello') return '/zoo/hello/' + ['ada', 'bob', 'cy', 'dee'][Math.floor(rng() * 4)];
  if (scenario.name === 'memo') return '/zoo/memo?n=' + Math.floor(rng() * MEMO_KEYS);
  return scenario.path;
}

/** Frees everything the leaks kept (tests call it so that one test's leaks do not outlive it). */
function reset() {
  for (const t of state.intervals) clearInterval(t);
  state.emitter.removeAllListeners();
  for (const name of state.globalsMade) delete globalThis[name];
  state = freshState();
}

/**
 * Serial ground truth: heap/external bytes kept per call of one scenario. One before/after pair
 * of full GCs is noisy (±300 B/call over 2,000 calls here), so this takes a full GC after each
 * block of calls and fits a least-squares line through the points.
 */
function measureTruth(scenario, blocks = 25, perBlock = 200) {
  const v8 = require('node:v8');
  const vm = require('node:vm');
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc');
  const rng = mulberry32(1);
  const input = () => {
    const url = new URL(sample(scenario, rng), 'http://x');
    return { params: { name: url.pathname.split('/')[3] }, query: Object.fromEntries(url.searchParams) };
  };
  const inputs = Array.from({ length: 64 }, input);
  for (let i = 0; i < 500; i++) scenario.handler(inputs[i & 63]); // warm-up: JIT, lazy init, LRU fill
  const xs = []; const hs = []; const es = [];
  for (let b = 0; b <= blocks; b++) {
    if (b > 0) for (let i = 0; i < perBlock; i++) scenario.handler(inputs[i & 63]);
    gc();
    xs.push(b * perBlock);
    hs.push(v8.getHeapStatistics().used_heap_size);
    es.push(process.memoryUsage().arrayBuffers);
  }
  const slope = (ys) => {
    const n = xs.length;
    const mx = xs.reduce((a, v) => a + v, 0) / n;
    const my = ys.reduce((a, v) => a + v, 0) / n;
    let sxy = 0; let sxx = 0;
    for (let i = 0; i < n; i++) { sxy += (xs[i] - mx) * (ys[i] - my); sxx += (xs[i] - mx) ** 2; }
    return sxy / sxx;
  };
  return { heap: slope(hs), external: slope(es) };
}

module.exports = { scenarios, mountExpress, mountFastify, sample, reset, measureTruth, perlIncrement, mulberry32 };

if (require.main === module) {
  process.on('warning', () => { /* MaxListenersExceededWarning is part of the show */ });
  for (const s of scenarios) {
    const t = measureTruth(s);
    console.log(`${s.name.padEnd(16)} heap ${t.heap.toFixed(0).padStart(6)} B/call (declared ${s.truthBytesPerRequest})  external ${t.external.toFixed(0).padStart(5)} B/call`);
  }
  reset();
}
