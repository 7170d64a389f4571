import fs from 'node:fs';

/**
 * A streaming reader of V8 `.heapsnapshot` files, written for the probe.
 *
 * Why our own and not a package: we measured the two on npm. `v8-heapsnapshot` streams through
 * oboe, which builds one JS value per number (tens of millions for a 500 MB heap).
 * `heap-snapshot-toolkit` is an ES-module-only re-export of the Chrome DevTools loader (our
 * CommonJS build cannot `require()` it on Node 20); it keeps every string of the snapshot and
 * computes dominators and retained sizes for the whole graph, which the probe never needs.
 * The probe needs three things only: the largest object id of the first snapshot, the objects of
 * the second one above that id, and a shortest retainer path for a few of them. So this reader:
 * - reads the file in 1 MB chunks (a snapshot of a big heap is larger than V8's ~512 MB string
 *   cap, so it is never one string);
 * - decodes `nodes` and `edges` straight into typed arrays (off the JS heap);
 * - keeps only the strings it was asked for, which it knows before reaching `strings` because
 *   V8 writes that section last.
 * It runs in a worker thread (see snapshotWorker.ts) so that parsing never lands in the heap
 * being measured (MEASURING.md §6: parsing in-process showed 20,008 "new" strings).
 */

const CHUNK = 1 << 20;

export interface SnapshotMeta {
  node_fields: string[];
  node_types: [string[], ...unknown[]];
  edge_fields: string[];
  edge_types: [string[], ...unknown[]];
}

interface Header {
  meta: SnapshotMeta;
  node_count: number;
  edge_count: number;
}

/** Byte reader over a file descriptor with a fixed buffer. */
class Reader {
  readonly buf = Buffer.allocUnsafe(CHUNK);
  pos = 0;
  end = 0;
  private filePos = 0;

  constructor(private readonly fd: number) {}

  /** File offset of the next unread byte. */
  tell(): number {
    return this.filePos - (this.end - this.pos);
  }

  /** Continues reading at a file offset. */
  seek(offset: number): void {
    this.filePos = offset;
    this.pos = 0;
    this.end = 0;
  }

  /** Refills the buffer; returns false at end of file. */
  fill(): boolean {
    this.end = fs.readSync(this.fd, this.buf, 0, CHUNK, this.filePos);
    this.filePos += this.end;
    this.pos = 0;
    return this.end > 0;
  }

  /** Advances past the next occurrence of `marker` (ASCII). Throws at end of file. */
  skipPast(marker: string): void {
    const m = Buffer.from(marker, 'latin1');
    let matched = 0;
    for (;;) {
      if (this.pos >= this.end && !this.fill()) throw new Error(`heap snapshot truncated: ${marker} not found`);
      const b = this.buf;
      for (let i = this.pos; i < this.end; i++) {
        if (b[i] === m[matched]) {
          matched++;
          if (matched === m.length) { this.pos = i + 1; return; }
        } else {
          matched = b[i] === m[0] ? 1 : 0;
        }
      }
      this.pos = this.end;
    }
  }

  /** Reads everything up to (not including) `marker` as text. Only for the small header. */
  textUntil(marker: string, max = 1 << 20): string {
    let text = '';
    for (;;) {
      if (this.pos >= this.end && !this.fill()) throw new Error('heap snapshot truncated in its header');
      text += this.buf.toString('latin1', this.pos, this.end);
      const at = text.indexOf(marker);
      if (at >= 0) {
        // Rewind the reader to just after the marker.
        const consumedBeyond = text.length - (at + marker.length);
        this.pos = this.end - consumedBeyond;
        return text.slice(0, at);
      }
      this.pos = this.end;
      if (text.length > max) throw new Error('heap snapshot header too large');
    }
  }

  /**
   * Decodes a JSON array of unsigned integers (the reader sits just after `[`). Each value goes
   * to `dst[k]` when `dst` is given, else to `each(k, value)`. Returns the count read.
   */
  numbers(dst: Uint32Array | undefined, each?: (k: number, v: number) => void): number {
    let k = 0;
    let v = 0;
    let inNum = false;
    for (;;) {
      if (this.pos >= this.end && !this.fill()) throw new Error('heap snapshot truncated in a number array');
      const b = this.buf;
      const end = this.end;
      for (let i = this.pos; i < end; i++) {
        const c = b[i];
        if (c >= 48 && c <= 57) { v = v * 10 + (c - 48); inNum = true; continue; }
        if (inNum) {
          if (dst !== undefined) { if (k < dst.length) dst[k] = v; } else if (each !== undefined) each(k, v);
          k++;
          v = 0;
          inNum = false;
        }
        if (c === 93) { this.pos = i + 1; return k; } // ]
      }
      this.pos = end;
    }
  }

  /**
   * Walks the JSON array of strings (the reader sits just after `[`), decoding only the indices
   * in `wanted`; the others are scanned, never materialised.
   */
  strings(wanted: Set<number>): Map<number, string> {
    const out = new Map<number, string>();
    let index = 0;
    let inStr = false;
    let escape = false;
    let keep = false;
    let parts: Buffer[] = [];
    let start = 0;
    for (;;) {
      if (this.pos >= this.end && !this.fill()) return out;
      const b = this.buf;
      const end = this.end;
      start = this.pos;
      for (let i = this.pos; i < end; i++) {
        const c = b[i];
        if (inStr) {
          if (escape) { escape = false; continue; }
          if (c === 92) { escape = true; continue; } // backslash
          if (c === 34) { // closing quote
            inStr = false;
            if (keep) {
              parts.push(b.subarray(start, i + 1));
              const raw = Buffer.concat(parts).toString('utf8');
              parts = [];
              try { out.set(index, JSON.parse(raw) as string); } catch { out.set(index, raw.slice(1, -1)); }
              if (out.size === wanted.size) { this.pos = i + 1; return out; }
            }
            index++;
          }
          continue;
        }
        if (c === 34) { inStr = true; keep = wanted.has(index); start = i; continue; }
        if (c === 93) { this.pos = i + 1; return out; }
      }
      if (inStr && keep) parts.push(Buffer.from(b.subarray(start, end)));
      this.pos = end;
    }
  }
}

function readHeader(r: Reader): Header {
  const text = r.textUntil('"nodes":[');
  const trimmed = text.replace(/[\s,]+$/, '');
  const parsed = JSON.parse(trimmed + '}') as { snapshot: Header };
  const h = parsed.snapshot;
  if (!h || !h.meta || !Array.isArray(h.meta.node_fields)) throw new Error('not a V8 heap snapshot');
  return h;
}

/** Node types that are real heap values the program made (as opposed to V8's own machinery). */
const USER_TYPES = new Set(['object', 'closure', 'array', 'string', 'concatenated string', 'sliced string', 'regexp', 'number', 'symbol', 'bigint']);
/** Types whose ids are not V8 heap-object ids (MEASURING.md §6): left out of max-id arithmetic. */
const NOT_HEAP_IDS = new Set(['native', 'synthetic']);

export interface FirstSnapshotSummary {
  /** Largest heap-object id in the snapshot: objects above it were allocated afterwards. */
  maxId: number;
  nodeCount: number;
  /** Nodes of user-visible types (objects, closures, strings, arrays, numbers, ...). */
  userObjects: number;
}

/** Reads only the nodes of a snapshot: its max heap-object id and object counts. */
export function summarizeFirst(file: string): FirstSnapshotSummary {
  const fd = fs.openSync(file, 'r');
  try {
    const r = new Reader(fd);
    const h = readHeader(r);
    const F = h.meta.node_fields.length;
    const typeOff = h.meta.node_fields.indexOf('type');
    const idOff = h.meta.node_fields.indexOf('id');
    const types = h.meta.node_types[0];
    const heapIdType = types.map((t) => !NOT_HEAP_IDS.has(t));
    const userType = types.map((t) => USER_TYPES.has(t));
    let maxId = 0;
    let userObjects = 0;
    let type = 0;
    const count = r.numbers(undefined, (k, v) => {
      const f = k % F;
      if (f === typeOff) { type = v; if (userType[v]) userObjects++; } else if (f === idOff && heapIdType[type] && (v & 1) === 1 && v > maxId) maxId = v;
    });
    // type precedes id in every V8 version we know; guard in case it ever does not.
    if (typeOff > idOff) throw new Error('unexpected heap snapshot field order');
    return { maxId, nodeCount: count / F, userObjects };
  } finally {
    fs.closeSync(fd);
  }
}

export interface NewObjectGroup {
  constructor: string;
  count: number;
  bytes: number;
  /** Why the first such object is still alive: the shortest path from the GC roots. */
  retainerPath?: string;
}

export interface SecondSnapshotAnalysis {
  nodeCount: number;
  userObjects: number;
  /** User-visible objects above the first snapshot's max id: allocated in between, still alive. */
  newUserObjects: number;
  newUserBytes: number;
  /** V8's own new nodes (code, hidden classes, feedback...), counted apart. */
  newInternalObjects: number;
  newInternalBytes: number;
  groups: NewObjectGroup[];
}

/**
 * Reads a second snapshot fully and reports the objects above `boundaryId` grouped by
 * constructor (for plain objects) or by kind (`(string)`, `(closure)`, ...), with retainer paths
 * for the `pathsFor` largest groups.
 */
export function analyzeSecond(file: string, boundaryId: number, opts: { maxGroups?: number; pathsFor?: number } = {}): SecondSnapshotAnalysis {
  const maxGroups = opts.maxGroups ?? 25;
  const pathsFor = opts.pathsFor ?? 8;
  const fd = fs.openSync(file, 'r');
  try {
    const r = new Reader(fd);
    const h = readHeader(r);
    const nf = h.meta.node_fields;
    const F = nf.length;
    const typeOff = nf.indexOf('type');
    const nameOff = nf.indexOf('name');
    const idOff = nf.indexOf('id');
    const sizeOff = nf.indexOf('self_size');
    const ecOff = nf.indexOf('edge_count');
    const ef = h.meta.edge_fields;
    const E = ef.length;
    const etypeOff = ef.indexOf('type');
    const enameOff = ef.indexOf('name_or_index');
    const etoOff = ef.indexOf('to_node');
    const types = h.meta.node_types[0];
    const etypes = h.meta.edge_types[0];
    const nodeCount = h.node_count;
    const nodes = new Uint32Array(nodeCount * F);
    const read = r.numbers(nodes);
    if (read !== nodeCount * F) throw new Error(`heap snapshot has ${read / F} nodes, header says ${nodeCount}`);
    r.skipPast('"edges":[');
    const edges = new Uint32Array(h.edge_count * E);
    r.numbers(edges);

    const userType = types.map((t) => USER_TYPES.has(t));
    const heapIdType = types.map((t) => !NOT_HEAP_IDS.has(t));
    const objectType = types.indexOf('object');
    const closureType = types.indexOf('closure');
    // The three string representations are one kind for the reader.
    const stringType = types.indexOf('string');
    const stringKind = types.map((t) => t === 'string' || t === 'concatenated string' || t === 'sliced string');

    // Group the new nodes by (type, name) for objects and closures, by type for other kinds.
    const TWO32 = 4294967296;
    const groups = new Map<number, { count: number; bytes: number; sample: number }>();
    let userObjects = 0;
    let newUserObjects = 0;
    let newUserBytes = 0;
    let newInternalObjects = 0;
    let newInternalBytes = 0;
    for (let n = 0; n < nodeCount; n++) {
      const o = n * F;
      const t = nodes[o + typeOff];
      if (userType[t]) userObjects++;
      const id = nodes[o + idOff];
      if (id <= boundaryId || (id & 1) === 0 || !heapIdType[t]) continue;
      const size = nodes[o + sizeOff];
      if (!userType[t]) { newInternalObjects++; newInternalBytes += size; continue; }
      newUserObjects++;
      newUserBytes += size;
      const kind = stringKind[t] ? stringType : t;
      const key = (kind + 1) * TWO32 + (t === objectType || t === closureType ? nodes[o + nameOff] : 0);
      const g = groups.get(key);
      if (g === undefined) groups.set(key, { count: 1, bytes: size, sample: n });
      else { g.count++; g.bytes += size; }
    }
    const ranked = [...groups.entries()].sort((a, b) => b[1].bytes - a[1].bytes || b[1].count - a[1].count).slice(0, maxGroups);

    // Shortest retainer paths: one BFS from the synthetic root over strong edges.
    const paths = new Map<number, Array<[number, number]>>(); // sample node -> [edge, node] steps
    let stringsAt = -1;
    if (pathsFor > 0 && ranked.length > 0) {
      const weak = etypes.indexOf('weak');
      const firstEdge = new Uint32Array(nodeCount + 1);
      for (let n = 0, e = 0; n < nodeCount; n++) { firstEdge[n] = e; e += nodes[n * F + ecOff]; firstEdge[n + 1] = e; }
      // The stack and handle scopes hold whatever the probe itself was touching when the snapshot
      // was taken: a path through them says nothing about why the app keeps an object. Paths
      // avoid them, unless there is no other.
      const syntheticType = types.indexOf('synthetic');
      const synthNames = new Set<number>();
      for (let n = 0; n < nodeCount; n++) if (nodes[n * F + typeOff] === syntheticType) synthNames.add(nodes[n * F + nameOff]);
      r.skipPast('"strings":[');
      stringsAt = r.tell();
      const synth = r.strings(synthNames);
      const avoid = new Set<number>();
      for (let n = 0; n < nodeCount; n++) {
        if (nodes[n * F + typeOff] !== syntheticType) continue;
        const name = synth.get(nodes[n * F + nameOff]) ?? '';
        if (name.startsWith('(Stack roots') || name.startsWith('(Handle scope')) avoid.add(n);
      }
      const parentEdge = new Int32Array(nodeCount);
      const queue = new Uint32Array(nodeCount);
      // Paths for the largest groups, objects and closures first: they name the holder best.
      const named = (key: number): boolean => { const t = Math.floor(key / TWO32) - 1; return t === objectType || t === closureType; };
      const order = [...ranked.filter(([k]) => named(k)), ...ranked.filter(([k]) => !named(k))];
      // The sample is the group's middle member in node order: the first one is often an odd one
      // out (measured: a socket's idle Timeout ahead of thirty leaked interval Timeouts).
      const chosen = order.slice(0, pathsFor);
      const wantIndex = new Map<number, { g: { count: number; sample: number }; at: number; seen: number }>();
      for (const [key, g] of chosen) wantIndex.set(key, { g, at: g.count >> 1, seen: 0 });
      for (let n = 0; n < nodeCount; n++) {
        const o = n * F;
        const t = nodes[o + typeOff];
        const id = nodes[o + idOff];
        if (id <= boundaryId || (id & 1) === 0 || !heapIdType[t] || !userType[t]) continue;
        const kind = stringKind[t] ? stringType : t;
        const w = wantIndex.get((kind + 1) * TWO32 + (t === objectType || t === closureType ? nodes[o + nameOff] : 0));
        if (w !== undefined && w.seen++ === w.at) w.g.sample = n;
      }
      const targets = new Set(chosen.map(([, g]) => g.sample));
      const bfs = (skip: Set<number>): void => {
        parentEdge.fill(-1);
        let head = 0;
        let tail = 0;
        queue[tail++] = 0;
        parentEdge[0] = -2;
        let remaining = targets.size;
        while (head < tail && remaining > 0) {
          const n = queue[head++];
          if (skip.has(n)) continue;
          for (let e = firstEdge[n]; e < firstEdge[n + 1]; e++) {
            const eo = e * E;
            if (edges[eo + etypeOff] === weak) continue;
            const to = edges[eo + etoOff] / F;
            if (parentEdge[to] !== -1) continue;
            parentEdge[to] = e;
            queue[tail++] = to;
            if (targets.has(to)) remaining--;
          }
        }
      };
      bfs(avoid);
      const unreached = [...targets].filter((t) => parentEdge[t] === -1);
      // Recover the parent node of an edge by binary search over firstEdge.
      const ownerOf = (e: number): number => {
        let lo = 0;
        let hi = nodeCount - 1;
        while (lo < hi) {
          const mid = (lo + hi + 1) >> 1;
          if (firstEdge[mid] <= e) lo = mid; else hi = mid - 1;
        }
        return lo;
      };
      const collect = (only: Iterable<number>): void => {
        for (const target of only) {
          if (parentEdge[target] === -1) continue;
          const steps: Array<[number, number]> = [];
          let n = target;
          while (n !== 0 && steps.length < 64) {
            const e = parentEdge[n];
            if (e < 0) break;
            steps.push([e, n]);
            n = ownerOf(e);
          }
          steps.reverse();
          paths.set(target, steps);
        }
      };
      collect(targets);
      if (unreached.length > 0) {
        bfs(new Set());
        collect(unreached);
      }
    }

    // Strings come last in the file: now we know which ones we need.
    const wanted = new Set<number>();
    for (const [key] of ranked) {
      const t = Math.floor(key / TWO32) - 1;
      if (t === objectType || t === closureType) wanted.add(key % TWO32);
    }
    const elementLike = new Set(['element', 'hidden'].map((t) => etypes.indexOf(t)));
    for (const steps of paths.values()) {
      for (const [e, n] of steps) {
        wanted.add(nodes[n * F + nameOff]);
        if (!elementLike.has(edges[e * E + etypeOff])) wanted.add(edges[e * E + enameOff]);
      }
    }
    if (stringsAt >= 0) r.seek(stringsAt); else r.skipPast('"strings":[');
    const strings = r.strings(wanted);
    const str = (i: number): string => strings.get(i) ?? '?';

    const label = (n: number): string => {
      const t = types[nodes[n * F + typeOff]];
      const name = str(nodes[n * F + nameOff]);
      switch (t) {
        case 'object': case 'synthetic': case 'native': return name || `(${t})`;
        case 'closure': return (name || '(anonymous)') + '()';
        case 'string': case 'concatenated string': case 'sliced string': return '(string)';
        default: return `(${t})`;
      }
    };
    const short = (s: string): string => (s.length > 60 ? s.slice(0, 57) + '...' : s);
    const renderPath = (steps: Array<[number, number]>): string => {
      const out: string[] = [];
      let first = true;
      for (const [e, n] of steps) {
        const et = etypes[edges[e * E + etypeOff]];
        const nameOrIndex = edges[e * E + enameOff];
        const edgeName = elementLike.has(edges[e * E + etypeOff]) ? `[${nameOrIndex}]` : short(str(nameOrIndex));
        const node = short(label(n));
        // Synthetic roots ("(GC roots)") read better alone; internal edges show their kind.
        let step: string;
        if (first || types[nodes[n * F + typeOff]] === 'synthetic' || et === 'internal' || et === 'hidden') step = node;
        else step = `${edgeName} (${node})`;
        first = false;
        // Linked lists (timer lists, listener chains) repeat one step many times: fold them.
        const last = out[out.length - 1];
        const m = last === undefined ? null : /^(.*?)(?: ×(\d+))?$/.exec(last);
        if (m && m[1] === step) out[out.length - 1] = `${step} ×${Number(m[2] ?? 1) + 1}`;
        else out.push(step);
      }
      return out.join(' → ');
    };

    const result: NewObjectGroup[] = ranked.map(([key, g]) => {
      const t = Math.floor(key / TWO32) - 1;
      let name: string;
      if (t === closureType) name = `(closure ${str(key % TWO32) || 'anonymous'})`;
      else if (t === objectType) name = str(key % TWO32) || '(object)';
      else name = label(g.sample);
      const steps = paths.get(g.sample);
      return steps ? { constructor: name, count: g.count, bytes: g.bytes, retainerPath: renderPath(steps) } : { constructor: name, count: g.count, bytes: g.bytes };
    });
    return { nodeCount, userObjects, newUserObjects, newUserBytes, newInternalObjects, newInternalBytes, groups: result };
  } finally {
    fs.closeSync(fd);
  }
}
