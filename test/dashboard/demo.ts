import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { repoRoot } from '../helpers';

export const DEMO = path.join(repoRoot, 'examples', 'demo', 'server.js');

export interface DemoProcess { port: number; child: ChildProcess; close(): Promise<void> }

/**
 * Runs the demo (`npm start`'s server) in its own process, as a user would: the browser driver's
 * allocations stay out of the heap the dashboard measures and the probe snapshots.
 * Resolves with undefined when the demo is not in this checkout.
 */
export async function startDemo(rps = 60): Promise<DemoProcess | undefined> {
  if (!fs.existsSync(DEMO)) return undefined;
  const child = spawn(process.execPath, [DEMO], { env: { ...process.env, PORT: '0', DEMO_RPS: String(rps) }, stdio: ['ignore', 'pipe', 'pipe'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`the demo did not start within 20 s: ${out}`)), 20_000);
    const onData = (c: Buffer) => {
      out += c.toString();
      const m = /Open http:\/\/[^:]+:(\d+)\/__leaks/.exec(out);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (c: Buffer) => { out += c.toString(); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`the demo exited with ${code}: ${out}`)); });
  });
  child.stdout?.resume();
  child.stderr?.resume();
  return {
    port, child,
    close: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null) { resolve(); return; }
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => { clearTimeout(kill); resolve(); });
      child.kill('SIGTERM');
    }),
  };
}
