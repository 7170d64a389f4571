import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { repoRoot, get } from '../helpers';
import { assertPromtoolClean, parseExposition, pick, value } from './prom';

interface Listening { event: string; port: number; metricsPort: number; workers: number[] }

/** Starts examples/cluster/server.js and resolves once its primary prints the listening line. */
function startCluster(workers: number): Promise<{ child: ChildProcess; info: Listening; stderr: () => string }> {
  const child = spawn(process.execPath, [path.join(repoRoot, 'examples', 'cluster', 'server.js')], {
    cwd: repoRoot,
    env: { ...process.env, PORT: '0', METRICS_PORT: '0', WORKERS: String(workers), HOST: '127.0.0.1', NODE_ENV: 'development' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => { err += c; });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`cluster example did not start within 20 s; stderr:\n${err}`)); }, 20_000);
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`cluster example exited early (${code}); stderr:\n${err}`)); });
    child.stdout!.on('data', (c: Buffer) => {
      out += c;
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line === undefined || !out.includes('\n')) return;
      clearTimeout(timer);
      child.removeAllListeners('exit');
      resolve({ child, info: JSON.parse(line) as Listening, stderr: () => err });
    });
  });
}

function stop(child: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) { resolve(child.exitCode); return; }
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', (code) => { clearTimeout(kill); resolve(code); });
    child.kill('SIGTERM');
  });
}

test('node:cluster with 2 workers: the primary\'s AggregatorRegistry sums requests and histograms across workers', async (t) => {
  const { child, info } = await startCluster(2);
  try {
    assert.equal(info.workers.length, 2);
    // Round-robin hands fresh connections to the workers in turn; three requests per cycle make
    // every route land on both workers.
    const pids = new Map<number, number>();
    const cycles = 12;
    for (let i = 0; i < cycles; i++) {
      for (let k = 0; k < 2; k++) {
        const r = await get(info.port, '/whoami');
        const pid = r.json().pid as number;
        pids.set(pid, (pids.get(pid) ?? 0) + 1);
      }
      assert.equal((await get(info.port, `/hello/n${i}`)).status, 200);
    }
    assert.deepEqual([...pids.keys()].sort(), [...info.workers].sort(), 'both workers served /whoami');
    for (const n of pids.values()) assert.ok(n < 2 * cycles, 'neither worker served every /whoami');

    const scrape = await get(info.metricsPort, '/metrics');
    assert.equal(scrape.status, 200);
    assert.match(String(scrape.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    await assertPromtoolClean(scrape.body, t);
    const s = parseExposition(scrape.body);
    // Sums: each worker saw only its share, the primary reports the whole.
    assert.equal(value(s, 'leakwatch_route_requests_total', { method: 'GET', route: '/whoami' }), 2 * cycles);
    assert.equal(value(s, 'leakwatch_route_requests_total', { method: 'GET', route: '/hello/:name' }), cycles);
    assert.equal(value(s, 'leakwatch_route_heap_delta_bytes_count', { route: '/whoami' }), 2 * cycles);
    assert.equal(value(s, 'leakwatch_route_heap_delta_bytes_bucket', { route: '/whoami', le: '+Inf' }), 2 * cycles);
    assert.equal(value(s, 'leakwatch_processes', { mode: 'dev' }), 2, 'two workers reporting');
    // The verdict state set, summed, counts workers: two workers hold some verdict for /whoami.
    const states = pick(s, 'leakwatch_route_verdict', { route: '/whoami' });
    assert.equal(states.length, 4);
    assert.equal(states.reduce((a, x) => a + x.value, 0), 2);
    // Per-process figures: one worker's own {path}/metrics (through the shared port) against the sum.
    const one = parseExposition((await get(info.port, '/__leaks/metrics')).body);
    assert.equal(value(one, 'leakwatch_processes', { mode: 'dev' }), 1);
    assert.equal(value(s, 'leakwatch_heap_limit_bytes'), 2 * value(one, 'leakwatch_heap_limit_bytes'));
    assert.ok(value(one, 'leakwatch_route_requests_total', { route: '/whoami' }) < 2 * cycles);
  } finally {
    const code = await stop(child);
    assert.equal(code, 0, 'the example shuts down cleanly on SIGTERM');
  }
});
