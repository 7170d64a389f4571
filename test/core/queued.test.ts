import test from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { EventEmitter } from 'node:events';
import { QueuedResponses } from '../../src/core/queued';
import { FLAVOURS, startApp } from '../safety/apps';

test('QueuedResponses: ends only the responses still pending when their socket closes, once', () => {
  const pending = new Set<object>();
  const ended: object[] = [];
  const q = new QueuedResponses((r) => { ended.push(r); pending.delete(r); }, (r) => pending.has(r), (e) => { throw e; });
  const sock = new EventEmitter();
  const [a, b, c] = [{}, {}, {}];
  for (const r of [a, b, c]) { pending.add(r); q.watch(sock, r); }
  pending.delete(b); // b ended on its own
  assert.equal(sock.listenerCount('close'), 1, 'one listener per socket, not per response');
  sock.emit('close');
  assert.deepEqual(ended, [a, c]);
  sock.emit('close');
  assert.deepEqual(ended, [a, c], 'nothing ended twice');
});

test('QueuedResponses: a long pipelining connection keeps its list as short as what is pending', () => {
  const pending = new Set<object>();
  const q = new QueuedResponses(() => {}, (r) => pending.has(r), (e) => { throw e; });
  const sock = new EventEmitter();
  for (let i = 0; i < 10_000; i++) {
    const r = {};
    pending.add(r);
    q.watch(sock, r);
    if (i % 2 === 1) pending.clear(); // responses end two at a time
  }
  const lists = Object.getOwnPropertySymbols(sock).map((k) => (sock as unknown as Record<symbol, unknown>)[k]).filter(Array.isArray);
  assert.equal(lists.length, 1);
  assert.ok((lists[0] as unknown[]).length <= 2, `list length ${(lists[0] as unknown[]).length}`);
});

test('QueuedResponses: two instances on one socket keep apart, and a fault goes to the fault callback', () => {
  const faults: unknown[] = [];
  const endedA: object[] = [];
  const a = new QueuedResponses((r) => endedA.push(r), () => true, (e) => faults.push(e));
  const b = new QueuedResponses(() => { throw new Error('boom'); }, () => true, (e) => faults.push(e));
  const sock = new EventEmitter();
  const [ra, rb] = [{}, {}];
  a.watch(sock, ra);
  b.watch(sock, rb);
  assert.doesNotThrow(() => sock.emit('close'));
  assert.deepEqual(endedA, [ra]);
  assert.equal(faults.length, 1);
  assert.match(String(faults[0]), /boom/);
  // No socket, or one without `on`: nothing to watch, no throw.
  assert.doesNotThrow(() => a.watch(null, {}));
  assert.doesNotThrow(() => a.watch({}, {}));
});

for (const flavour of FLAVOURS) {
  test(`${flavour}: requests pipelined behind a slow one are not left in flight when the client hangs up`, async () => {
    const app = await startApp(flavour, { notice: false });
    const m = app.monitor!;
    try {
      // One slow request (300 ms), then ten quick ones queued behind it on the same connection.
      const quick = Array.from({ length: 10 }, (_, i) => `GET /hello/q${i} HTTP/1.1\r\nHost: localhost\r\n\r\n`).join('');
      await new Promise<void>((resolve, reject) => {
        const sock = net.connect(app.port, '127.0.0.1', () => {
          sock.write('GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n' + quick);
          setTimeout(() => { sock.destroy(); resolve(); }, 100);
        });
        sock.on('error', reject);
      });
      const t0 = Date.now();
      while (m.recorder.totalRequests < 11 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
      assert.equal(m.recorder.totalRequests, 11, 'every request recorded');
      assert.equal(m.recorder.inFlight, 0, 'nothing left in flight');
      assert.equal(m.route('GET', '/slow')?.aborted, 1);
      assert.equal(m.route('GET', '/hello/:name')?.requests, 10);
      assert.equal(m.faults, 0);
    } finally { await app.close(); }
  });
}
