// Helpers for the metrics tests: the real promtool binary, and a parser for the text exposition.
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';

let available: boolean | undefined;

/** True when `promtool` is on the PATH (CI installs Debian's `prometheus` package for it). */
export function hasPromtool(): boolean {
  if (available === undefined) {
    const r = spawnSync('promtool', ['--version'], { encoding: 'utf8' });
    available = r.status === 0;
  }
  return available;
}

export const NO_PROMTOOL = 'promtool is not installed (apt-get install prometheus provides it; .ci/run installs it)';

export interface ToolResult { code: number; output: string }

/** Runs promtool with arguments and optional stdin; never throws on a non-zero exit. */
export function promtool(args: string[], stdin?: string, cwd?: string): Promise<ToolResult> {
  return new Promise((resolve, reject) => {
    const child = execFile('promtool', args, { cwd, timeout: 30_000, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      if (err && code === -1) { reject(err); return; }
      resolve({ code, output: String(stdout) + String(stderr) });
    });
    if (stdin !== undefined) child.stdin?.end(stdin);
  });
}

/** `promtool check metrics` on an exposition: exit 0 and no lint complaint. */
export async function checkMetrics(text: string): Promise<ToolResult> {
  return promtool(['check', 'metrics'], text);
}

export interface PromSample { name: string; labels: Record<string, string>; value: number }

function unescape(v: string): string {
  return v.replace(/\\(.)/g, (_m, c: string) => (c === 'n' ? '\n' : c));
}

/** Parses the Prometheus text format (0.0.4) into samples. Comments and blank lines are skipped. */
export function parseExposition(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable exposition line: ${JSON.stringify(line)}`);
    const labels: Record<string, string> = {};
    if (m[2] !== undefined) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)",?/g;
      let lm: RegExpExecArray | null;
      while ((lm = re.exec(m[2])) !== null) labels[lm[1]] = unescape(lm[2]);
    }
    const raw = m[3];
    out.push({ name: m[1], labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return out;
}

/** The samples of one metric whose labels include all of `match`. */
export function pick(samples: PromSample[], name: string, match: Record<string, string> = {}): PromSample[] {
  return samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
}

/** The value of exactly one matching sample; throws when there are none or several. */
export function value(samples: PromSample[], name: string, match: Record<string, string> = {}): number {
  const found = pick(samples, name, match);
  if (found.length !== 1) throw new Error(`expected one sample of ${name} ${JSON.stringify(match)}, found ${found.length}`);
  return found[0].value;
}

/** `promtool check metrics` must exit 0 with no lint complaint (skipped, and said so, without promtool). */
export async function assertPromtoolClean(text: string, t: { diagnostic(s: string): void }): Promise<void> {
  if (!hasPromtool()) { t.diagnostic(`promtool check metrics skipped: ${NO_PROMTOOL}`); return; }
  const r = await checkMetrics(text);
  assert.equal(r.code, 0, `promtool check metrics failed:\n${r.output}`);
  assert.equal(r.output.trim(), '', `promtool lint complaints:\n${r.output}`);
}
