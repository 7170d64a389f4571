import fs from 'node:fs';
import path from 'node:path';
import type * as EjsModule from 'ejs';
import { HttpError } from '../http/respond';

/**
 * EJS is loaded on the first page rendered, not when leakwatch is required: it compiles with
 * `new Function` even at load time, and a host started with
 * `--disallow-code-generation-from-strings` would otherwise crash on `require('leakwatch/…')`.
 */
let ejsModule: typeof EjsModule | undefined;
function loadEjs(): typeof EjsModule {
  if (ejsModule === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      ejsModule = require('ejs') as typeof EjsModule;
    } catch (e) {
      throw new HttpError(503, `the dashboard's EJS views could not load (${e instanceof Error ? e.message : String(e)}); the JSON API under the same path still works`);
    }
  }
  return ejsModule;
}

/**
 * The `views/` directory of the package. Compiled code lives in `dist/src/core/dashboard`, so it
 * is four levels up; the search goes on upwards in case the layout changes.
 */
function findViews(): string {
  let dir = __dirname;
  for (let i = 0; i < 6; i++) {
    const candidate = path.join(dir, 'views');
    if (fs.existsSync(path.join(candidate, 'overview.ejs'))) return candidate;
    dir = path.dirname(dir);
  }
  return path.resolve(__dirname, '..', '..', '..', '..', 'views');
}

export const VIEWS_DIR = findViews();

type Template = (data: Record<string, unknown>) => string;
const compiled = new Map<string, Template>();

/**
 * Renders `views/<name>.ejs`. Templates are compiled once per process: the set is fixed, so the
 * cache is bounded. `<%= %>` escapes; `<%- %>` is used only for markup built by our own chart
 * functions, which escape every text they place.
 *
 * @example
 * ```ts
 * const html = render('overview', locals);
 * ```
 */
export function render(name: string, data: Record<string, unknown>): string {
  let t = compiled.get(name);
  if (!t) {
    const filename = path.join(VIEWS_DIR, name + '.ejs');
    const ejs = loadEjs();
    try {
      t = ejs.compile(fs.readFileSync(filename, 'utf8'), { filename, cache: true, async: false }) as unknown as Template;
    } catch (e) {
      if (e instanceof EvalError) throw new HttpError(503, `the dashboard's EJS views need code generation from strings, which this process disallows; the JSON API under the same path still works`);
      throw e;
    }
    compiled.set(name, t);
  }
  return t(data);
}

const TYPES: Record<string, string> = { '.css': 'text/css; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.svg': 'image/svg+xml' };
const assets = new Map<string, { type: string; body: Buffer }>();

/** A file of `views/assets`, read once; undefined for anything else (no path traversal possible). */
export function asset(name: string): { type: string; body: Buffer } | undefined {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(name)) return undefined;
  const cached = assets.get(name);
  if (cached) return cached;
  const type = TYPES[path.extname(name)];
  if (!type) return undefined;
  let body: Buffer;
  try { body = fs.readFileSync(path.join(VIEWS_DIR, 'assets', name)); } catch { return undefined; }
  const a = { type, body };
  assets.set(name, a);
  return a;
}
