import inspector from 'node:inspector';
import path from 'node:path';

export interface PackageRow { name: string; count: number }

export interface ModulesInfo {
  commonjs: { count: number; packages: PackageRow[] };
  esm: { count: number; packages: PackageRow[]; method: string; note: string };
  builtins: { count: number; names: string[] };
}

/**
 * Which package a file belongs to: the last `node_modules/<name>` (or `@scope/name`) in its path,
 * else `(app)` for the application's own files.
 *
 * @example
 * ```ts
 * packageOf('/srv/app/node_modules/@fastify/ajv/index.js'); // "@fastify/ajv"
 * ```
 */
export function packageOf(file: string): string {
  const f = file.startsWith('file://') ? decodeURIComponent(file.slice(7)) : file;
  const parts = f.split(/[\\/]/);
  const i = parts.lastIndexOf('node_modules');
  if (i < 0 || i + 1 >= parts.length) return '(app)';
  const first = parts[i + 1];
  return first.startsWith('@') && i + 2 < parts.length ? `${first}/${parts[i + 2]}` : first;
}

function group(files: Iterable<string>): { count: number; packages: PackageRow[] } {
  const counts = new Map<string, number>();
  let count = 0;
  for (const f of files) { count++; const p = packageOf(f); counts.set(p, (counts.get(p) ?? 0) + 1); }
  const packages = [...counts].map(([name, n]) => ({ name, count: n })).sort((a, b) => b.count - a.count || (a.name < b.name ? -1 : 1));
  return { count, packages };
}

/**
 * ES modules have no public registry like `require.cache`. Enabling the inspector's Debugger
 * domain makes V8 replay a `scriptParsed` event for every script it holds, and ES modules are
 * the ones with `file://` URLs. It takes milliseconds and is done only when the page is opened.
 */
function scriptUrls(): string[] | null {
  const session = new inspector.Session();
  const urls: string[] = [];
  try {
    session.connect();
    session.on('Debugger.scriptParsed', (m: { params: { url: string } }) => { if (m.params.url) urls.push(m.params.url); });
    // In-thread sessions dispatch synchronously: every event has arrived when post() returns.
    session.post('Debugger.enable', () => undefined);
    session.post('Debugger.disable', () => undefined);
    return urls;
  } catch {
    return null;
  } finally {
    try { session.disconnect(); } catch { /* already gone */ }
  }
}

/**
 * Loaded modules with counts: CommonJS from `require.cache`, ES modules from the V8 script list,
 * Node built-ins from `process.moduleLoadList`.
 *
 * @example
 * ```ts
 * loadedModules().commonjs.packages[0]; // { name: 'express', count: 48 }
 * ```
 */
export function loadedModules(): ModulesInfo {
  const cjs = Object.keys(require.cache);
  const urls = scriptUrls();
  const esmFiles = urls === null ? [] : [...new Set(urls.filter((u) => u.startsWith('file://')))];
  const list = (process as { moduleLoadList?: string[] }).moduleLoadList ?? [];
  const builtins = list.filter((m) => m.startsWith('NativeModule ')).map((m) => m.slice('NativeModule '.length))
    .filter((m) => !m.startsWith('internal/')).sort();
  return {
    commonjs: group(cjs),
    esm: {
      ...group(esmFiles),
      method: urls === null ? 'unavailable' : 'inspector Debugger.scriptParsed (file:// URLs)',
      note: urls === null
        ? 'ES modules are not listed: the inspector could not be opened in this process.'
        : 'ES modules have no require.cache; these are the file:// scripts V8 holds. Node\'s own and vm-evaluated modules are not counted.',
    },
    builtins: { count: builtins.length, names: builtins },
  };
}

/** Paths under the current directory are shown relative to it, shorter and free of home paths. */
export function shortPath(file: string): string {
  const rel = path.relative(process.cwd(), file);
  return rel.startsWith('..') ? file : rel;
}
