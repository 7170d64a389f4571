/** Starts one benchmark server (overhead-app.js) in a fresh process, optionally under callgrind. */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { splitCallgrind, type CallgrindSplit } from './callgrind';

const appJs = path.join(__dirname, 'overhead-app.js');

export interface ServerProc {
  port: number;
  pid: number;
  /** User + system CPU of the server process so far, µs (process.cpuUsage, asked over stdin). */
  cpu(): Promise<number>;
  /** The detector's checkpoint figures (taken, costMs, gcMs, profileMs, analyzeMs), or {} without one. */
  stats(): Promise<Record<string, number>>;
  /** Callgrind only: dumps and zeroes the counters; resolves to the instructions since the last dump. */
  dump(): Promise<CallgrindSplit>;
  stop(): Promise<void>;
  stderr(): string;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Directory for callgrind output; when set the server runs under valgrind --tool=callgrind. */
  callgrindDir?: string;
  startTimeoutMs?: number;
  /** Extra node/V8 flags (callgrind runs always add --single-threaded). */
  nodeFlags?: string[];
}

function totalsOf(file: string): number {
  const text = fs.readFileSync(file, 'utf8');
  const m = /^totals:\s+(\d+)/m.exec(text) ?? /^summary:\s+(\d+)/m.exec(text);
  if (!m) throw new Error(`no totals line in ${file}`);
  return Number(m[1]);
}

export async function startServer(framework: string, variant: string, opts: StartOptions = {}): Promise<ServerProc> {
  const env = { ...process.env, ...(opts.env ?? {}) };
  if (!opts.env?.NODE_ENV) delete env.NODE_ENV;
  // Diagnosis: extra node flags for every server, e.g. LEAKWATCH_NODE_FLAGS=--perf-basic-prof names
  // JIT code in callgrind dumps through /tmp/perf-<pid>.map.
  const extra = (process.env.LEAKWATCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
  opts = { ...opts, nodeFlags: [...(opts.nodeFlags ?? []), ...extra] };
  let child: ChildProcess;
  if (opts.callgrindDir !== undefined) {
    fs.mkdirSync(opts.callgrindDir, { recursive: true });
    child = spawn('valgrind', [
      '--tool=callgrind', `--callgrind-out-file=${path.join(opts.callgrindDir, 'cg.%p.out')}`,
      process.execPath, '--single-threaded', ...(opts.nodeFlags ?? []), appJs, framework, variant,
    ], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  } else {
    child = spawn(process.execPath, [...(opts.nodeFlags ?? []), appJs, framework, variant], { env, stdio: ['pipe', 'pipe', 'pipe'] });
  }
  let err = '';
  child.stderr!.on('data', (d: Buffer) => { if (err.length < 20_000) err += d.toString(); });
  const lines = readline.createInterface({ input: child.stdout! });
  const waiting: Array<(line: string) => void> = [];
  const statsWaiting: Array<(line: string) => void> = [];
  let exited = false;
  let portResolve!: (p: number) => void;
  let portReject!: (e: Error) => void;
  const portP = new Promise<number>((res, rej) => { portResolve = res; portReject = rej; });
  lines.on('line', (line) => {
    if (line.startsWith('PORT ')) portResolve(Number(line.slice(5)));
    else if (line.startsWith('CPU ')) waiting.shift()?.(line);
    else if (line.startsWith('STATS ')) statsWaiting.shift()?.(line);
  });
  child.on('exit', (code) => {
    exited = true;
    portReject(new Error(`${framework}/${variant} exited (${code}) before listening: ${err.slice(-2000)}`));
  });
  const timer = setTimeout(() => portReject(new Error(`${framework}/${variant} did not listen in time: ${err.slice(-2000)}`)), opts.startTimeoutMs ?? 20_000);
  let port: number;
  try {
    port = await portP;
  } catch (e) {
    child.kill('SIGKILL');
    throw e;
  } finally {
    clearTimeout(timer);
  }
  let dumps = 0;
  return {
    port,
    pid: child.pid!,
    cpu: () => new Promise<number>((resolve) => {
      waiting.push((line) => {
        const [, u, s] = line.split(' ');
        resolve(Number(u) + Number(s));
      });
      child.stdin!.write('cpu\n');
    }),
    stats: () => new Promise<Record<string, number>>((resolve) => {
      statsWaiting.push((line) => resolve(JSON.parse(line.slice(6)) as Record<string, number>));
      child.stdin!.write('stats\n');
    }),
    dump: async () => {
      if (opts.callgrindDir === undefined) throw new Error('not under callgrind');
      await new Promise<void>((resolve, reject) => {
        execFile('callgrind_control', ['-d', String(child.pid)], (e) => (e ? reject(e) : resolve()));
      });
      dumps++;
      const file = path.join(opts.callgrindDir, `cg.${child.pid}.out.${dumps}`);
      for (let i = 0; i < 200 && !fs.existsSync(file); i++) await new Promise((r) => setTimeout(r, 50));
      const split = splitCallgrind(file);
      const n = totalsOf(file);
      if (Math.abs(n - split.total) > 1e-6 * n) throw new Error(`callgrind parse mismatch in ${file}: ${split.total} vs totals ${n}`);
      if (!process.env.LEAKWATCH_KEEP_CALLGRIND) fs.rmSync(file, { force: true });
      return split;
    },
    stop: async () => {
      if (exited) return;
      const gone = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), opts.callgrindDir ? 30_000 : 5_000);
      await gone;
      clearTimeout(t);
      if (opts.callgrindDir !== undefined) fs.rmSync(path.join(opts.callgrindDir, `cg.${child.pid}.out`), { force: true });
    },
    stderr: () => err,
  };
}
