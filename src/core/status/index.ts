import type { LeakMonitor } from '../monitor';
import { sendJson, HttpError } from '../http/respond';
import { environment } from './environment';
import { loadedModules } from './modules';
import { nonStandardGlobals } from './globals';
import { activeResources } from './resources';
import { heapSpaces } from './heap';
import { GcHistory } from './gchistory';
import { WarningLog } from './warnings';
import { snapshotPreflight, availableMemory, streamHeapSnapshot } from './snapshot';

/** The status pages, in menu order. Each is `{path}/status/<name>` and `{path}/api/status/<name>`. */
export const STATUS_PAGES = [
  { name: 'environment', title: 'Environment' },
  { name: 'modules', title: 'Loaded modules' },
  { name: 'globals', title: 'Globals' },
  { name: 'resources', title: 'Active resources' },
  { name: 'heap', title: 'Heap spaces' },
  { name: 'gc', title: 'GC history' },
  { name: 'warnings', title: 'Warnings' },
] as const;

export type StatusName = typeof STATUS_PAGES[number]['name'];

/** The stateful sources behind the status pages (the GC ring, the warnings log). */
export class StatusSources {
  readonly gc: GcHistory;
  readonly warnings: WarningLog;
  snapshotBusy = false;

  constructor(private readonly monitor: LeakMonitor) {
    this.gc = new GcHistory(256);
    this.warnings = new WarningLog(monitor.recorder, 50);
  }

  /** Global name → the routes whose requests saw it appear. */
  globalsByRoute(): Map<string, string[]> {
    const m = new Map<string, string[]>();
    for (const s of this.monitor.recorder.routes.values()) {
      for (const g of s.globalsAdded) {
        const list = m.get(g) ?? [];
        if (list.length < 10) list.push(s.key);
        m.set(g, list);
      }
    }
    return m;
  }

  /** The JSON body of one status page. */
  data(name: StatusName): unknown {
    switch (name) {
      case 'environment': return environment();
      case 'modules': return loadedModules();
      case 'globals': return nonStandardGlobals(this.monitor.recorder.addedGlobals(), this.globalsByRoute());
      case 'resources': return activeResources();
      case 'heap': return heapSpaces();
      case 'gc': return { since: this.gc.since, total: this.gc.total, kept: this.gc.size, summary: this.gc.summary(), events: this.gc.events() };
      case 'warnings': return { total: this.warnings.total, kept: this.warnings.size, warnings: this.warnings.records() };
    }
  }

  close(): void {
    this.gc.close();
    this.warnings.close();
  }
}

export function isStatusName(s: string): s is StatusName {
  return STATUS_PAGES.some((p) => p.name === s);
}

/**
 * Registers the status JSON endpoints and the heap-snapshot download on the monitor's router.
 * Returns the sources so the dashboard can render the same data as pages.
 *
 * @example
 * ```ts
 * const status = installStatus(monitor);
 * status.data('heap'); // same as GET {path}/api/status/heap
 * ```
 */
export function installStatus(monitor: LeakMonitor): StatusSources {
  const sources = new StatusSources(monitor);
  monitor.features.status = { close: () => sources.close() };
  const r = monitor.router;

  r.get('/api/status', (ctx) => {
    sendJson(ctx.res, 200, { pages: STATUS_PAGES.map((p) => ({ ...p, json: `${ctx.base}/api/status/${p.name}`, html: `${ctx.base}/status/${p.name}` })) });
  });
  r.get(/^\/api\/status\/([a-z]+)$/, (ctx) => {
    const name = ctx.params[0];
    if (!isStatusName(name)) throw new HttpError(404, `no status page "${name}"; known: ${STATUS_PAGES.map((p) => p.name).join(', ')}`);
    sendJson(ctx.res, 200, sources.data(name));
  });

  r.get('/api/heap-snapshot', (ctx) => {
    const pre = snapshotPreflight(process.memoryUsage().heapUsed, availableMemory());
    sendJson(ctx.res, 200, { ...pre, busy: sources.snapshotBusy, warning: SNAPSHOT_WARNING });
  });
  r.post('/api/heap-snapshot', async (ctx) => {
    const body = await ctx.body();
    if (body.confirm !== true && body.confirm !== 'yes') {
      throw new HttpError(400, 'a heap snapshot needs confirmation: send {"confirm": true} (form field confirm=yes). ' + SNAPSHOT_WARNING);
    }
    if (sources.snapshotBusy) throw new HttpError(409, 'a heap snapshot is already being taken');
    const pre = snapshotPreflight(process.memoryUsage().heapUsed, availableMemory());
    if (!pre.ok) throw new HttpError(503, pre.reason);
    sources.snapshotBusy = true;
    streamHeapSnapshot(ctx.res, () => { sources.snapshotBusy = false; });
  });
  return sources;
}

export const SNAPSHOT_WARNING = 'A heap snapshot contains secrets: every string and object in the process, passwords, tokens, session keys, personal data. Treat the file as a secret. Taking it blocks the event loop for seconds and needs many times the heap in free memory.';
