// `postbalance demo`: the main job on a built-in workload. Generates a realistic multimodal
// batch, plans it with every algorithm, and shows per phase how far each lands from the lower
// bound, how long planning took and what it moves; then the per-rank load before and after.
import { writeFile } from 'node:fs/promises';
import { BACKENDS, getAccelerator } from '../primitives/backend.js';
import type { CliIO } from '../cli.js';
import { batchFromExamples } from '../input.js';
import { planBatch } from '../plan/index.js';
import { ALGORITHMS, type Plan } from '../types.js';
import { generateWorkload } from '../workload.js';
import { flags, intFlag, oneOf } from './args.js';

const BARS = ' ▁▂▃▄▅▆▇█';

export function fmtBytes(b: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let u = 0;
  while (b >= 1000 && u < units.length - 1) { b /= 1000; u++; }
  return `${b.toFixed(u === 0 ? 0 : 1)} ${units[u]}`;
}

/** One line of block characters per 64 ranks, scaled to `scale`. */
function sparkline(costs: number[], scale: number): string[] {
  const lines: string[] = [];
  for (let s = 0; s < costs.length; s += 64) {
    lines.push(costs.slice(s, s + 64).map((c) => BARS[Math.min(8, Math.round((c / scale) * 8))]).join(''));
  }
  return lines;
}

function table(rows: string[][]): string {
  const w = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((x, c) => (c === 0 ? x.padEnd(w[c]) : x.padStart(w[c]))).join('  ')).join('\n') + '\n';
}

/** Per phase: bars of every rank's cost before (sampled) and after (balanced), to one scale. */
export function loadChartSvg(before: Plan, after: Plan): string {
  const R = before.ranks;
  const W = 900, H = 140, pad = 40;
  const parts: string[] = [];
  before.phases.forEach((ph, p) => {
    const y0 = p * (H + pad) + pad;
    const a = after.phases[p];
    const max = Math.max(ph.maxCost, a.maxCost) || 1;
    const bw = (W - 80) / R;
    parts.push(`<text x="10" y="${y0 - 10}" font-size="14" font-family="sans-serif">${ph.name}: max/mean ${(ph.maxCost / ph.meanCost).toFixed(2)} → ${(a.maxCost / a.meanCost).toFixed(3)} (grey: sampled, blue: balanced, line: mean)</text>`);
    ph.ranks.forEach((rk, r) => {
      const hb = (rk.cost / max) * H, ha = (a.ranks[r].cost / max) * H;
      const x = 60 + r * bw;
      parts.push(`<rect x="${x.toFixed(2)}" y="${(y0 + H - hb).toFixed(2)}" width="${Math.max(bw * 0.9, 0.5).toFixed(2)}" height="${hb.toFixed(2)}" fill="#bbb"/>`);
      parts.push(`<rect x="${(x + bw * 0.25).toFixed(2)}" y="${(y0 + H - ha).toFixed(2)}" width="${Math.max(bw * 0.5, 0.3).toFixed(2)}" height="${ha.toFixed(2)}" fill="#2a6fdb"/>`);
    });
    const ym = y0 + H - (ph.meanCost / max) * H;
    parts.push(`<line x1="60" x2="${W - 20}" y1="${ym.toFixed(2)}" y2="${ym.toFixed(2)}" stroke="#d33" stroke-dasharray="4 3"/>`);
  });
  const total = before.phases.length * (H + pad) + pad;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${total}" viewBox="0 0 ${W} ${total}"><rect width="100%" height="100%" fill="white"/>${parts.join('')}</svg>\n`;
}

export async function main(args: string[], io: CliIO): Promise<number> {
  const f = flags(args, {
    ranks: { type: 'string' },
    examples: { type: 'string' },
    seed: { type: 'string' },
    svg: { type: 'string' },
    backend: { type: 'string' },
    verbose: { type: 'boolean' },
  });
  const ranks = intFlag(f.ranks, '--ranks', 128);
  const examples = intFlag(f.examples, '--examples', ranks * 32);
  const seed = intFlag(f.seed, '--seed', 1, 0);
  const backend = oneOf(f.backend, BACKENDS, '--backend', 'cpu');
  const { config, examples: batchExamples } = generateWorkload({ ranks, examples, seed });
  const batch = batchFromExamples(batchExamples, config);
  const accel = await getAccelerator(backend, { verbose: f.verbose, warn: (l) => io.stderr(l + '\n') });
  const plans = new Map<string, Plan>();
  try {
    for (const algorithm of ALGORITHMS) plans.set(algorithm, await planBatch(batch, config, { algorithm }, accel));
    // The naive reference: balanced groups placed on ranks in group order, ignoring where data is.
    plans.set('lpt/naive', await planBatch(batch, config, { algorithm: 'lpt', placement: 'naive' }, accel));
  } finally {
    accel.destroy();
  }
  const none = plans.get('none')!, best = plans.get('best')!;
  const out: string[] = [];
  out.push(`postbalance demo: ${examples} examples on ${ranks} ranks (${config.ranksPerNode} per node), seed ${seed}, backend ${accel.backend}\n`);
  out.push(`items: ${none.phases.map((p) => `${p.name} ${p.items}`).join(', ')}\n\n`);
  for (let p = 0; p < config.phases.length; p++) {
    const rows = [['algorithm', 'max/mean', 'max/bound', 'plan ms', 'moved', 'bytes', 'inter-node']];
    for (const [name, plan] of plans) {
      const ph = plan.phases[p];
      rows.push([
        name === 'best' ? `best (${ph.algorithm})` : name === 'lpt/naive' ? 'lpt, naive placement' : name,
        (ph.maxCost / ph.meanCost).toFixed(4),
        (ph.maxCost / ph.lowerBound).toFixed(4),
        plan.stats.planMs.toFixed(1),
        String(ph.exchange.movedItems),
        fmtBytes(ph.exchange.bytes),
        fmtBytes(ph.exchange.interNodeBytes),
      ]);
    }
    out.push(`phase ${config.phases[p].name} (${none.phases[p].items} items, lower bound ${none.phases[p].lowerBound.toFixed(1)})\n`);
    out.push(table(rows) + '\n');
  }
  out.push('per-rank load, sampled (before) vs best (after), one column per rank, same scale per phase:\n');
  for (let p = 0; p < config.phases.length; p++) {
    const b = none.phases[p], a = best.phases[p];
    const scale = Math.max(b.maxCost, a.maxCost);
    out.push(`  ${b.name} before (max/mean ${(b.maxCost / b.meanCost).toFixed(2)})\n`);
    for (const l of sparkline(b.ranks.map((r) => r.cost), scale)) out.push(`    |${l}|\n`);
    out.push(`  ${a.name} after  (max/mean ${(a.maxCost / a.meanCost).toFixed(4)})\n`);
    for (const l of sparkline(a.ranks.map((r) => r.cost), scale)) out.push(`    |${l}|\n`);
  }
  io.stdout(out.join(''));
  if (f.svg) {
    await writeFile(f.svg, loadChartSvg(none, best));
    io.stderr(`wrote ${f.svg}\n`);
  }
  return 0;
}
