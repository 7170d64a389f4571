/** Small helpers shared by the benchmarks: robust statistics, tables and result files. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const repoRoot = path.resolve(__dirname, '..', '..', '..');

export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const m = v.length >> 1;
  return v.length % 2 === 1 ? v[m] : (v[m - 1] + v[m]) / 2;
}

export function minMax(xs: number[]): [number, number] {
  const v = xs.filter((x) => Number.isFinite(x));
  return v.length === 0 ? [NaN, NaN] : [Math.min(...v), Math.max(...v)];
}

/** Fixed decimals; NaN prints as a dash so missing cells stay readable. */
export function fix(x: number, digits = 2): string {
  return Number.isFinite(x) ? x.toFixed(digits) : '–';
}

export function signed(x: number, digits = 2): string {
  return Number.isFinite(x) ? (x >= 0 ? '+' : '') + x.toFixed(digits) : '–';
}

export function pct(ratio: number, digits = 1): string {
  return Number.isFinite(ratio) ? signed((ratio - 1) * 100, digits) + '%' : '–';
}

/** Renders a Markdown table (it reads fine in a terminal too). */
export function table(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => '| ' + cells.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ') + ' |';
  return [line(head), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...rows.map(line)].join('\n');
}

export function machine(): Record<string, unknown> {
  const cpus = os.cpus();
  return {
    date: new Date().toISOString(),
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model,
    memoryGB: Math.round(os.totalmem() / 2 ** 30),
    loadavg: os.loadavg(),
  };
}

/** Writes `bench-results/<name>-<timestamp>.json` (the directory is git-ignored) and returns its path. */
export function writeResult(name: string, data: unknown): string {
  const dir = path.join(repoRoot, 'bench-results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify(data, null, 2) + '\n');
  return file;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
