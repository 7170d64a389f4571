/**
 * Server-rendered SVG charts. The CSP forbids inline styles, so the markup only carries classes
 * (styled by dashboard.css) and geometry attributes. Pure functions: data in, markup out. Every
 * piece of text placed in the SVG is escaped here, since callers pass route names through.
 */

export interface Point { x: number; y: number }

export interface Marker {
  x: number;
  /** CSS class suffix: `mark-forced`, `mark-natural`, ... */
  kind: string;
  label: string;
}

export interface ChartOptions {
  width?: number;
  height?: number;
  /** Accessible title, also shown as the tooltip. */
  title: string;
  /** Formats a y value for the axis labels. */
  formatY?: (v: number) => string;
  /** Formats an x value for the axis labels. */
  formatX?: (v: number) => string;
  /** Vertical lines at these x positions (checkpoints, GCs). */
  markers?: Marker[];
  /** Draw bars from zero instead of a line (for per-request deltas that may be negative). */
  bars?: boolean;
  /** Draw a dot per point (sparse series such as checkpoints). */
  dots?: boolean;
}

/** Escapes text for SVG/HTML element content and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c] as string));
}

function num(n: number): string {
  return Number.isFinite(n) ? (Math.round(n * 10) / 10).toString() : '0';
}

function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (!Number.isFinite(lo)) return [0, 1];
  if (lo === hi) { const pad = Math.abs(lo) * 0.1 || 1; return [lo - pad, hi + pad]; }
  return [lo, hi];
}

/**
 * A line or bar chart with axes, min/max labels and optional vertical markers.
 *
 * @example
 * ```ts
 * const svg = lineChart([{ x: 0, y: 10 }, { x: 1, y: 12 }], { title: 'live heap', formatY: formatBytes });
 * ```
 */
export function lineChart(points: Point[], o: ChartOptions): string {
  const W = o.width ?? 1000;
  const H = o.height ?? 220;
  const left = 90;
  const right = 10;
  const top = 10;
  const bottom = 24;
  const fy = o.formatY ?? ((v: number) => num(v));
  const fx = o.formatX ?? ((v: number) => num(v));
  const title = escapeXml(o.title);
  // Uniform scaling (the default aspect ratio) keeps the axis labels undistorted at any width.
  const head = `<svg class="chart" viewBox="0 0 ${W} ${H}" role="img" aria-label="${title}"><title>${title}</title>`;
  if (points.length === 0) {
    return `${head}<text class="chart-empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">no data yet</text></svg>`;
  }
  let [y0, y1] = extent(points.map((p) => p.y));
  if (o.bars) { y0 = Math.min(0, y0); y1 = Math.max(0, y1); }
  const xs = points.map((p) => p.x).concat((o.markers ?? []).map((m) => m.x));
  const [x0, x1] = extent(xs);
  const sx = (x: number) => left + ((x - x0) / (x1 - x0)) * (W - left - right);
  const sy = (y: number) => top + (1 - (y - y0) / (y1 - y0)) * (H - top - bottom);
  const parts: string[] = [head];
  parts.push(`<line class="axis" x1="${left}" y1="${top}" x2="${left}" y2="${H - bottom}"/>`);
  parts.push(`<line class="axis" x1="${left}" y1="${H - bottom}" x2="${W - right}" y2="${H - bottom}"/>`);
  parts.push(`<text class="tick" x="${left - 4}" y="${top + 8}" text-anchor="end">${escapeXml(fy(y1))}</text>`);
  parts.push(`<text class="tick" x="${left - 4}" y="${H - bottom}" text-anchor="end">${escapeXml(fy(y0))}</text>`);
  parts.push(`<text class="tick" x="${left}" y="${H - 6}" text-anchor="start">${escapeXml(fx(x0))}</text>`);
  parts.push(`<text class="tick" x="${W - right}" y="${H - 6}" text-anchor="end">${escapeXml(fx(x1))}</text>`);
  if (y0 < 0 && y1 > 0) parts.push(`<line class="zero" x1="${left}" y1="${num(sy(0))}" x2="${W - right}" y2="${num(sy(0))}"/>`);
  for (const m of o.markers ?? []) {
    const x = num(sx(m.x));
    parts.push(`<line class="mark ${escapeXml(m.kind)}" x1="${x}" y1="${top}" x2="${x}" y2="${H - bottom}"><title>${escapeXml(m.label)}</title></line>`);
  }
  if (o.bars) {
    const bw = Math.max(1, (W - left - right) / points.length - 1);
    for (const p of points) {
      const yTop = sy(Math.max(0, p.y));
      const h = Math.max(0.5, Math.abs(sy(p.y) - sy(0)));
      parts.push(`<rect class="${p.y < 0 ? 'bar neg' : 'bar'}" x="${num(sx(p.x) - bw / 2)}" y="${num(yTop)}" width="${num(bw)}" height="${num(h)}"/>`);
    }
  } else {
    const d = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${num(sx(p.x))},${num(sy(p.y))}`).join('');
    parts.push(`<path class="line" d="${d}"/>`);
    if (o.dots) for (const p of points) parts.push(`<circle class="dot" cx="${num(sx(p.x))}" cy="${num(sy(p.y))}" r="2.5"/>`);
  }
  parts.push('</svg>');
  return parts.join('');
}

/**
 * A tiny inline chart without axes for table rows. Bars above and below a zero line.
 *
 * @example
 * ```ts
 * sparkline([120, -40, 300], 'garbage per request');
 * ```
 */
export function sparkline(values: number[], title: string, width = 120, height = 24, slots = 60): string {
  const t = escapeXml(title);
  if (values.length === 0) return `<svg class="spark" viewBox="0 0 ${width} ${height}" role="img" aria-label="${t}"><title>${t}</title></svg>`;
  let [lo, hi] = extent(values);
  lo = Math.min(0, lo);
  hi = Math.max(0, hi);
  const sy = (y: number) => 1 + (1 - (y - lo) / (hi - lo)) * (height - 2);
  // Fixed slots, newest at the right: a route with 3 requests shows 3 thin bars, not 3 blocks.
  const n = Math.max(slots, values.length);
  const bw = width / n;
  const offset = n - values.length;
  const parts = [`<svg class="spark" viewBox="0 0 ${width} ${height}" role="img" aria-label="${t}" preserveAspectRatio="none"><title>${t}</title>`];
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    const y = sy(Math.max(0, v));
    const h = Math.max(0.5, Math.abs(sy(v) - sy(0)));
    parts.push(`<rect class="${v < 0 ? 'bar neg' : 'bar'}" x="${num((offset + i) * bw)}" y="${num(y)}" width="${num(Math.max(0.5, bw - 0.5))}" height="${num(h)}"/>`);
  }
  parts.push('</svg>');
  return parts.join('');
}
