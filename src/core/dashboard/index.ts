import type { LeakMonitor } from '../monitor';
import type { HttpContext } from '../http/router';
import { sendText, HttpError } from '../http/respond';
import { summarize } from '../summary';
import { installStatus, isStatusName, STATUS_PAGES, type StatusSources } from '../status/index';
import { snapshotPreflight, availableMemory } from '../status/snapshot';
import { render, asset } from './views';
import { formatBytes, formatCount, formatDuration, formatAgo } from './format';
import { lineChart } from './charts';
import { routeRows, liveHeapChart, memoryCards, capturedRequest, routeProjection, ruledOut, findingLines, routeHref } from './model';
import { probeView, probeProgress } from './probeview';
import { callInternal } from './internal';

const fmt = { bytes: formatBytes, count: formatCount, duration: formatDuration, ago: (t: number | null) => formatAgo(t) };

/** Seconds of auto-refresh asked for with `?refresh=N` (0 = off), bounded. */
function refreshOf(ctx: HttpContext): number {
  const n = Number(ctx.query.get('refresh') ?? 0);
  return Number.isInteger(n) && n >= 2 && n <= 3600 ? n : 0;
}

/**
 * This page's own URL, rebuilt from what the router parsed. A meta refresh needs it explicitly:
 * refreshing to the current URL when it has a `#fragment` is a same-document jump, not a reload.
 */
function selfUrl(ctx: HttpContext): string {
  const path = ctx.base + ctx.subpath.split('/').map(encodeURIComponent).join('/');
  const q = ctx.query.toString();
  return q === '' ? path : `${path}?${q}`;
}

function page(ctx: HttpContext, monitor: LeakMonitor, view: string, title: string, pageName: string, locals: Record<string, unknown>, status = 200): void {
  const html = render(view, {
    base: ctx.base,
    title,
    page: pageName,
    refresh: refreshOf(ctx),
    refreshUrl: selfUrl(ctx),
    ...locals,
    statusPages: STATUS_PAGES,
    pid: process.pid,
    mode: monitor.options.mode,
    renderedAt: new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC',
    fmt,
  });
  sendText(ctx.res, status, 'text/html; charset=utf-8', ctx.req.method === 'HEAD' ? '' : html);
}

/** How long a no-JS probe submission waits for the report before redirecting anyway. */
const FORM_WAIT_MS = 150_000;

/** The probe's last form-submission error per route key, shown once on the route page. */
const MAX_FORM_ERRORS = 20;

/**
 * Installs the `{path}` dashboard: the overview, one page per route, the status pages, the heap
 * snapshot confirmation and the static assets. Pages are server-rendered and work with
 * JavaScript off; the script in `/assets` only adds live progress for the probe.
 *
 * @example
 * ```ts
 * // Installed by LeakMonitor's constructor; open http://localhost:3000/__leaks
 * ```
 */
export function installDashboard(monitor: LeakMonitor): void {
  const status: StatusSources = installStatus(monitor);
  const formErrors = new Map<string, string>();
  const r = monitor.router;

  r.get('/', (ctx) => {
    const rows = routeRows(monitor, ctx.base);
    page(ctx, monitor, 'overview', 'Overview', 'overview', {
      memory: memoryCards(monitor),
      findings: monitor.processFindings,
      liveChart: liveHeapChart(monitor.processFindings.history, status.gc.events()),
      checkpointSeconds: monitor.options.checkpointIntervalMs / 1000,
      rows,
      totalRequests: monitor.recorder.totalRequests,
      overflowed: monitor.recorder.overflowed,
    });
  });

  r.get(/^\/assets\/([^/]+)$/, (ctx) => {
    const a = asset(ctx.params[0]);
    if (!a) throw new HttpError(404, `no asset ${ctx.params[0]}`);
    sendText(ctx.res, 200, a.type, ctx.req.method === 'HEAD' ? '' : a.body);
  });

  r.get(/^\/routes\/([\s\S]+)$/, async (ctx) => {
    const key = ctx.params[0];
    const st = monitor.recorder.routes.get(key);
    if (!st) { page(ctx, monitor, 'notfound', 'Not found', 'route', { key }, 404); return; }
    const s = summarize(st);
    const deltas = st.heapDelta.toArray();
    const ext = st.externalDelta.toArray();
    const progressReply = await callInternal(monitor, ctx.req, ctx.base, '/api/probe', undefined, 250);
    const probeAvailable = progressReply !== undefined && progressReply.status !== 404 && progressReply.status !== 405;
    const progress = probeAvailable && progressReply && progressReply.status === 200 ? probeProgress(progressReply.body) : null;
    // The form's own error (busy, bad input), else the last probe's failure if it was this route's.
    const probeError = formErrors.get(key)
      ?? (progress && !progress.running && progress.error && progress.method === st.method && progress.route === st.route ? progress.error : null);
    formErrors.delete(key);
    const resources = Object.entries(s.resourceDeltaPerSampledRequest).sort((a, b) => b[1] - a[1]);
    const pts = (xs: number[]) => xs.map((y, i) => ({ x: i + 1, y }));
    page(ctx, monitor, 'route', `${st.method} ${st.route}`, 'route', {
      s,
      token: monitor.formToken,
      deltas,
      deltaChart: lineChart(pts(deltas), { title: `${st.key}: heap delta per request`, formatY: formatBytes, formatX: (x) => `#${Math.round(x)}`, bars: true }),
      externalChart: ext.some((v) => v !== 0) ? lineChart(pts(ext), { title: `${st.key}: external delta per request`, formatY: formatBytes, formatX: (x) => `#${Math.round(x)}`, bars: true, height: 140 }) : null,
      resources,
      captured: capturedRequest(st),
      projection: routeProjection(s, monitor.options.workers),
      ruledOut: ruledOut(s),
      findingLines: findingLines(s),
      warnings: status.warnings.records().filter((w) => w.routes.includes(key)).slice(0, 10),
      progress,
      probeAvailable,
      probeError,
      report: probeView(st.probe),
      selfHref: routeHref(ctx.base, key),
      // After a no-JS probe submission, refresh while it runs, then stop.
      ...(ctx.query.get('probing') === '1' && progress?.running ? { refresh: 2 } : {}),
    });
  });

  // The probe button without JavaScript: a form post, answered with a redirect to the route page,
  // which shows the progress (auto-refreshing while the probe runs) and then the report.
  r.post('/probe', async (ctx) => {
    const body = await ctx.body();
    const method = typeof body.method === 'string' ? body.method : '';
    const route = typeof body.route === 'string' ? body.route : '';
    const key = `${method} ${route}`;
    const iterations = Number(body.iterations ?? 30);
    const payload: Record<string, unknown> = { method, route, iterations: Number.isFinite(iterations) ? iterations : body.iterations, _token: body._token };
    if (body.unsafe === 'true' || body.unsafe === true) payload.unsafe = true;
    // Without JavaScript the browser simply waits for the answer (a probe takes seconds), then
    // lands on the route page with the report; past FORM_WAIT_MS it lands there while the probe
    // still runs, and the page refreshes itself until the report is there.
    const reply = await callInternal(monitor, ctx.req, ctx.base, '/api/probe', payload, FORM_WAIT_MS);
    if (reply && reply.status >= 400) {
      const msg = reply.body && typeof reply.body === 'object' && typeof (reply.body as { error?: unknown }).error === 'string'
        ? (reply.body as { error: string }).error : `the probe answered ${reply.status}`;
      if (formErrors.size >= MAX_FORM_ERRORS) formErrors.delete(formErrors.keys().next().value as string);
      formErrors.set(key, msg);
    }
    if (!ctx.isForm) {
      // A JSON client should use {path}/api/probe; answer with what it said.
      if (reply) sendText(ctx.res, reply.status, 'application/json; charset=utf-8', JSON.stringify(reply.body));
      else sendText(ctx.res, 202, 'application/json; charset=utf-8', JSON.stringify({ started: true }));
      return;
    }
    redirect(ctx, routeHref(ctx.base, key) + (reply === undefined ? '?probing=1' : '') + '#probe');
  });

  r.get(/^\/status\/([a-z]+)$/, (ctx) => {
    const name = ctx.params[0];
    if (name === 'snapshot') {
      page(ctx, monitor, 'status-snapshot', 'Heap snapshot', 'snapshot', {
        pre: snapshotPreflight(process.memoryUsage().heapUsed, availableMemory()),
        busy: status.snapshotBusy,
        token: monitor.formToken,
      });
      return;
    }
    if (!isStatusName(name)) throw new HttpError(404, `no status page "${name}"`);
    const d = status.data(name);
    const locals: Record<string, unknown> = { d };
    if (name === 'gc') {
      const events = status.gc.events();
      const now = Date.now();
      locals.chart = lineChart(events.map((e) => ({ x: (e.at - now) / 1000, y: e.oldGenBytes })), {
        title: 'Old generation after each GC', formatY: formatBytes, formatX: (x) => (Math.abs(x) < 0.5 ? 'now' : `${Math.round(x)} s`), height: 160,
        markers: events.filter((e) => e.kind === 'major').map((e) => ({ x: (e.at - now) / 1000, kind: e.forced ? 'mark-forced' : 'mark-natural', label: `major GC${e.forced ? ' (forced)' : ''}` })),
      });
    }
    const title = STATUS_PAGES.find((p) => p.name === name)?.title ?? name;
    page(ctx, monitor, `status-${name}`, title, name, locals);
  });
  r.get('/status', (ctx) => redirect(ctx, `${ctx.base}/status/environment`));
}

function redirect(ctx: HttpContext, location: string): void {
  if (ctx.res.headersSent) { ctx.res.end(); return; }
  ctx.res.statusCode = 303;
  ctx.res.setHeader('Location', location);
  ctx.res.setHeader('Cache-Control', 'no-store');
  ctx.res.setHeader('Content-Length', '0');
  ctx.res.end();
}

