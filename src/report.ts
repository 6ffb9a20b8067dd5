// What the demo and simulate commands print and draw: aligned text tables, byte and rate units,
// block-character sparklines, and SVG charts written by hand (no dependencies): scaling of
// throughput and MFU per strategy, and per-rank load per phase before/after balancing. Numbers
// are printed with a fixed precision so the same input gives the same file byte for byte.

/** Rows of cells as aligned columns: the first `left` columns left-aligned, the rest right-aligned. */
export function table(rows: string[][], left = 1): string {
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c < left ? cell.padEnd(w[c]) : cell.padStart(w[c]))).join('  ').trimEnd()).join('\n') + '\n';
}

/** 1234567 → "1.2 MB" (decimal units). */
export function fmtBytes(b: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let u = 0;
  while (b >= 1000 && u < units.length - 1) { b /= 1000; u++; }
  return `${b.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** 1234567 → "1.23M", 12345 → "12.3k". */
export const fmtRate = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : x >= 1e3 ? `${(x / 1e3).toFixed(1)}k` : x.toFixed(0));

const BARS = ' ▁▂▃▄▅▆▇█';

/** One line of block characters per `width` values, each scaled to `scale`. */
export function sparkline(values: readonly number[], scale: number, width = 64): string[] {
  const lines: string[] = [];
  for (let s = 0; s < values.length; s += width) {
    lines.push(values.slice(s, s + width).map((c) => BARS[Math.min(8, Math.round((c / scale) * 8))]).join(''));
  }
  return lines;
}

const COLORS: Record<string, string> = { none: '#9e9e9e', 'llm-only': '#e69f00', orchestrated: '#0072b2' };
const color = (name: string) => COLORS[name] ?? '#333333';
const f = (x: number) => (Math.round(x * 10) / 10).toFixed(1);
const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

export interface Series {
  name: string;
  points: [number, number][];
}

interface Panel { x: number; y: number; w: number; h: number }

/** A "nice" upper bound for an axis with a little headroom, so a line never sits on the frame. */
function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const top = max * 1.05;
  const p = 10 ** Math.floor(Math.log10(top));
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= top) return m * p;
  return 10 * p;
}

function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e9) return `${+(v / 1e9).toPrecision(3)}G`;
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e3) return `${+(v / 1e3).toPrecision(3)}k`;
  return `${+v.toPrecision(3)}`;
}

/** Line chart, x on a log2 axis (ranks), y linear from 0. */
function linePanel(out: string[], p: Panel, title: string, yLabel: string, series: Series[], xs: number[]): void {
  const x0 = Math.log2(Math.min(...xs)), x1 = Math.log2(Math.max(...xs));
  const ymax = niceMax(Math.max(...series.flatMap((s) => s.points.map((q) => q[1]))));
  const X = (x: number) => p.x + (x1 > x0 ? ((Math.log2(x) - x0) / (x1 - x0)) * p.w : p.w / 2);
  const Y = (y: number) => p.y + p.h - (y / ymax) * p.h;
  out.push(`<text x="${f(p.x)}" y="${f(p.y - 12)}" font-weight="bold">${esc(title)}</text>`);
  for (let i = 0; i <= 4; i++) {
    const v = (ymax * i) / 4;
    out.push(`<line x1="${f(p.x)}" y1="${f(Y(v))}" x2="${f(p.x + p.w)}" y2="${f(Y(v))}" stroke="#e0e0e0"/>`);
    out.push(`<text x="${f(p.x - 6)}" y="${f(Y(v) + 4)}" text-anchor="end">${fmtTick(v)}</text>`);
  }
  for (const x of xs) out.push(`<text x="${f(X(x))}" y="${f(p.y + p.h + 16)}" text-anchor="middle">${x}</text>`);
  out.push(`<text x="${f(p.x + p.w / 2)}" y="${f(p.y + p.h + 34)}" text-anchor="middle">ranks (GPUs)</text>`);
  out.push(`<text transform="translate(${f(p.x - 48)},${f(p.y + p.h / 2)}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  out.push(`<rect x="${f(p.x)}" y="${f(p.y)}" width="${f(p.w)}" height="${f(p.h)}" fill="none" stroke="#555"/>`);
  for (const s of series) {
    const pts = s.points.map(([x, y]) => `${f(X(x))},${f(Y(y))}`).join(' ');
    out.push(`<polyline points="${pts}" fill="none" stroke="${color(s.name)}" stroke-width="2"/>`);
    for (const [x, y] of s.points) out.push(`<circle cx="${f(X(x))}" cy="${f(Y(y))}" r="3" fill="${color(s.name)}"/>`);
  }
}

function legend(out: string[], x: number, y: number, names: string[]): void {
  names.forEach((n, i) => {
    out.push(`<rect x="${f(x + i * 150)}" y="${f(y - 10)}" width="14" height="10" fill="${color(n)}"/>`);
    out.push(`<text x="${f(x + i * 150 + 20)}" y="${f(y)}">${esc(n)}</text>`);
  });
}

function svgDoc(w: number, h: number, body: string[]): string {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="12">`,
    `<rect width="${w}" height="${h}" fill="white"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Two panels: tokens/s and MFU vs ranks, one line per strategy. */
export function scalingSvg(title: string, xs: number[], throughput: Series[], mfu: Series[]): string {
  const body: string[] = [];
  body.push(`<text x="20" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`);
  legend(body, 80, 48, throughput.map((s) => s.name));
  linePanel(body, { x: 80, y: 90, w: 380, h: 260 }, 'Throughput per GPU', 'tokens / s per GPU', throughput, xs);
  linePanel(body, { x: 580, y: 90, w: 380, h: 260 }, 'Model FLOPs utilisation', 'MFU (%)', mfu, xs);
  return svgDoc(1000, 410, body);
}

export interface LoadPanel {
  /** The panel's heading, e.g. "vision: compute per rank (ms)". */
  title: string;
  /** Per-rank load: sampled layout and balanced layout. */
  before: ArrayLike<number>;
  after: ArrayLike<number>;
}

/** One panel per phase: per-rank load before (grey bars) and after (blue line) balancing. */
export function loadSvg(title: string, panels: LoadPanel[], legend: [string, string] = ['none (sampled layout)', 'orchestrated (balanced)']): string {
  const body: string[] = [];
  const w = 900, ph = 150, gap = 60;
  body.push(`<text x="20" y="24" font-size="15" font-weight="bold">${esc(title)}</text>`);
  body.push(`<rect x="80" y="38" width="14" height="10" fill="${color('none')}"/><text x="100" y="48">${esc(legend[0])}</text>`);
  body.push(`<rect x="280" y="38" width="14" height="10" fill="${color('orchestrated')}"/><text x="300" y="48">${esc(legend[1])}</text>`);
  panels.forEach((pn, k) => {
    const p: Panel = { x: 80, y: 90 + k * (ph + gap), w, h: ph };
    const R = pn.before.length;
    let max = 0;
    for (let r = 0; r < R; r++) max = Math.max(max, pn.before[r]!, pn.after[r]!);
    const ymax = niceMax(max);
    const Y = (y: number) => p.y + p.h - (y / ymax) * p.h;
    const bw = p.w / R;
    body.push(`<text x="${f(p.x)}" y="${f(p.y - 8)}" font-weight="bold">${esc(pn.title)}</text>`);
    for (let i = 0; i <= 2; i++) {
      const v = (ymax * i) / 2;
      body.push(`<line x1="${f(p.x)}" y1="${f(Y(v))}" x2="${f(p.x + p.w)}" y2="${f(Y(v))}" stroke="#e0e0e0"/>`);
      body.push(`<text x="${f(p.x - 6)}" y="${f(Y(v) + 4)}" text-anchor="end">${fmtTick(v)}</text>`);
    }
    // Bars as one path: thousands of ranks stay a small file.
    let d = '';
    for (let r = 0; r < R; r++) {
      const y = Y(pn.before[r]!);
      d += `M${f(p.x + r * bw)} ${f(p.y + p.h)}V${f(y)}h${f(Math.max(bw * 0.85, 0.3))}V${f(p.y + p.h)}z`;
    }
    body.push(`<path d="${d}" fill="${color('none')}"/>`);
    const pts: string[] = [];
    for (let r = 0; r < R; r++) pts.push(`${f(p.x + (r + 0.5) * bw)},${f(Y(pn.after[r]!))}`);
    body.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color('orchestrated')}" stroke-width="1.5"/>`);
    body.push(`<rect x="${f(p.x)}" y="${f(p.y)}" width="${f(p.w)}" height="${f(p.h)}" fill="none" stroke="#555"/>`);
    body.push(`<text x="${f(p.x + p.w / 2)}" y="${f(p.y + p.h + 16)}" text-anchor="middle">rank 0 … ${R - 1}</text>`);
  });
  return svgDoc(w + 120, 90 + panels.length * (ph + gap), body);
}
