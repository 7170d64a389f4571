// Child process of `npm run bench:probe`: builds a live heap of HEAP_MB megabytes, serves the
// zoo and a few bench routes with leakwatch mounted, and prints its port. The bench probes it
// over HTTP, exactly as a developer would.
import path from 'node:path';
import inspector from 'node:inspector';
import { randomBytes } from 'node:crypto';
import express from 'express';
import { leakwatch } from '../../src/express/index';
import { forceFullGc, liveDataHeap } from '../../src/core/gc';
import { repoRoot } from '../helpers';

// eslint-disable-next-line @typescript-eslint/no-var-requires
const zoo = require(path.join(repoRoot, 'examples', 'zoo', 'index.js')) as { mountExpress(app: unknown): unknown };

/**
 * The heap: small records like an app's caches and sessions (an object, a 100-character flat
 * string, a two-element array), about 300 bytes and 3 to 4 heap nodes each, so that node counts
 * (what snapshot cost follows) are realistic for the byte size.
 */
const ballast: unknown[] = [];
function buildHeap(mb: number): void {
  const target = mb * 1024 * 1024;
  forceFullGc();
  while (liveDataHeap() < target) {
    for (let i = 0; i < 20_000; i++) ballast.push({ id: ballast.length, name: randomBytes(50).toString('hex'), tags: [i, i + 1] });
    forceFullGc();
  }
}

process.on('warning', () => { /* the zoo's listener leak warns on purpose */ });
buildHeap(Number(process.env.HEAP_MB ?? 50));
const app = express();
const mw = leakwatch({ notice: false, autoProbe: false });
app.use(mw);
zoo.mountExpress(app);

// GC method comparison: vm-exposed gc() vs the inspector's HeapProfiler.collectGarbage.
app.get('/bench/gc', async (_req, res) => {
  const n = 5;
  const session = new inspector.Session();
  session.connect();
  const collect = (): Promise<void> => new Promise((resolve, reject) => session.post('HeapProfiler.collectGarbage', (e) => (e ? reject(e) : resolve())));
  const vmMs: number[] = [];
  const inspMs: number[] = [];
  const vmHeap: number[] = [];
  const inspHeap: number[] = [];
  for (let i = 0; i < n; i++) {
    let t = performance.now();
    forceFullGc();
    vmMs.push(performance.now() - t);
    vmHeap.push(liveDataHeap());
    t = performance.now();
    await collect();
    inspMs.push(performance.now() - t);
    inspHeap.push(liveDataHeap());
  }
  session.disconnect();
  res.json({ vmMs, inspMs, vmHeap, inspHeap, ballast: ballast.length });
});

const server = app.listen(0, '127.0.0.1', () => {
  const a = server.address();
  process.stdout.write(JSON.stringify({ port: typeof a === 'object' && a ? a.port : 0, pid: process.pid }) + '\n');
});
