// `postbalance simulate`: what post-balancing buys one training step, per strategy.
//   simulate --batch FILE|- --config FILE [--model mllm-84b] [--gpu h100] [--json]
//   simulate --sweep 8,64,256,1024,2560 [--model mllm-84b] [--svg scaling.svg] [--seed S]
// Results go to stdout; notes (e.g. where a chart was written) to stderr.
import type { CliIO } from './io.js';
import { InputError } from '../errors.js';
import { MAX_RANKS, parseBatch, parseConfig } from '../input.js';
import { EXCHANGE_SCHEMES, type ExchangeScheme } from '../simulate/alltoall.js';
import {
  configFromModel, getGpu, getModel, GPU_PRESETS, MODEL_PRESETS, overrideGpu, phaseModels, scaleEncoders,
  FLOPS_PER_COST_UNIT,
} from '../simulate/presets.js';
import { simulateBatch, type SimulateOptions } from '../simulate/strategies.js';
import { formatSimulation, formatSweep, runSweep, simulationJson, sweepSvgs } from '../simulate/sweep.js';
import type { Config } from '../types.js';
import { intFlag, intList, keyValues, numberFlag, oneOf, parseFlags, readInput, writeOutput } from './args.js';

const USAGE = `usage:
  postbalance simulate --batch FILE|- (--config FILE | --ranks N) [options]
  postbalance simulate --sweep 8,64,256,1024,2560 [--examples-per-rank 16] [--svg FILE] [--seed S] [options]
options:
  --model NAME          ${Object.keys(MODEL_PRESETS).join(', ')} (default mllm-84b)
  --gpu NAME            ${Object.keys(GPU_PRESETS).join(', ')} (default h100)
  --set FIELD=N,...     override GPU fields: peakFlops, achievable, intraBw, interBw (bytes/s),
                        launchLatency, intraPeerLatency, interPeerLatency (s)
  --encoder-scale F     encoder depth × F (default 1)
  --sync-exposed F      share of gradient sync not hidden by backward compute (default 0.1)
  --scheme S            orchestrated all-to-all: nodewise (default), flat or auto
  --ranks-per-node G    (sweep, or --batch without --config; default 8)
  --load-ranks R        sweep point shown in the per-rank load chart (default: largest ≤ 256)
  --json                JSON instead of a table
`;

const FLAGS = {
  batch: { type: 'string' }, config: { type: 'string' }, model: { type: 'string' }, gpu: { type: 'string' },
  set: { type: 'string', join: true }, 'encoder-scale': { type: 'string' }, 'sync-exposed': { type: 'string' },
  scheme: { type: 'string' }, ranks: { type: 'string' }, 'ranks-per-node': { type: 'string' }, sweep: { type: 'string' },
  'examples-per-rank': { type: 'string' }, seed: { type: 'string' }, svg: { type: 'string' }, 'load-ranks': { type: 'string' },
  json: { type: 'boolean' },
} as const;

/** The plan balances the config's costs and the simulator times the model's FLOPs: say so when they differ. */
function costMismatch(config: Config, opts: SimulateOptions): string | null {
  const models = phaseModels(opts.model);
  const off: string[] = [];
  for (const p of config.phases) {
    const m = models.find((x) => x.name === p.name);
    if (!m) continue;
    const lin = m.flops.linear / FLOPS_PER_COST_UNIT, quad = m.flops.quadratic / FLOPS_PER_COST_UNIT;
    const close = (a: number | undefined, b: number) => Math.abs((a ?? 0) - b) <= 1e-9 * Math.max(1, Math.abs(b));
    if (!close(p.cost.perToken, lin) || !close(p.cost.perTokenSquared, quad) || (p.cost.perItem ?? 0) !== 0) off.push(p.name);
  }
  return off.length ? `note: config costs of ${off.join(', ')} are not ${opts.model.name}'s FLOPs: the plan balances the config's costs, the step is timed with the model's FLOPs\n` : null;
}

export async function main(args: string[], io: CliIO): Promise<number> {
  const f = parseFlags('simulate', args, FLAGS);
  if (f === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  const model = scaleEncoders(getModel(f.model ?? 'mllm-84b'), numberFlag(f['encoder-scale'], '--encoder-scale', 1, (n) => n > 0, 'a positive number'));
  const gpu = overrideGpu(getGpu(f.gpu ?? 'h100'), keyValues(f.set, '--set'));
  const scheme: ExchangeScheme = oneOf(f.scheme, EXCHANGE_SCHEMES, '--scheme', 'nodewise');
  const opts: SimulateOptions = {
    model, gpu, schemes: { orchestrated: scheme },
    syncExposed: numberFlag(f['sync-exposed'], '--sync-exposed', 0.1, (n) => n >= 0 && n <= 1, 'a number in [0, 1]'),
  };
  const ranksPerNode = intFlag(f['ranks-per-node'], '--ranks-per-node', 8);
  if (f.sweep !== undefined) {
    for (const k of ['batch', 'config', 'ranks'] as const) if (f[k] !== undefined) throw new InputError(`simulate: --${k} and --sweep do not go together`);
    const ranks = intList(f.sweep, '--sweep');
    for (const r of ranks) if (r > MAX_RANKS) throw new InputError(`--sweep: ranks must be at most ${MAX_RANKS}, got ${r}`);
    const examplesPerRank = intFlag(f['examples-per-rank'], '--examples-per-rank', 16);
    const seed = intFlag(f.seed, '--seed', 1, 0);
    const loadRanks = f['load-ranks'] !== undefined ? intFlag(f['load-ranks'], '--load-ranks', 0) : undefined;
    if (loadRanks !== undefined && !ranks.includes(loadRanks)) throw new InputError(`--load-ranks: ${loadRanks} is not one of the sweep's rank counts (${ranks.join(', ')})`);
    const sims = await runSweep({ ...opts, ranks, examplesPerRank, ranksPerNode, seed });
    if (f.svg) {
      const charts = sweepSvgs(sims, model, gpu, examplesPerRank, loadRanks);
      const loadPath = f.svg.replace(/(\.svg)?$/i, '-load.svg');
      await writeOutput(f.svg, charts.scaling, '--svg');
      await writeOutput(loadPath, charts.load, '--svg');
      io.stderr(`wrote ${f.svg} and ${loadPath}\n`);
    }
    if (f.json) io.stdout(JSON.stringify({ examplesPerRank, seed, sweep: sims.map((s) => simulationJson(s, model, gpu)) }, null, 2) + '\n');
    else io.stdout(formatSweep(sims, model, gpu, examplesPerRank));
    return 0;
  }
  for (const k of ['examples-per-rank', 'seed', 'svg', 'load-ranks'] as const) if (f[k] !== undefined) throw new InputError(`simulate: --${k} only applies to --sweep`);
  if (!f.batch) throw new InputError('simulate: give --batch FILE (with --config FILE or --ranks N) or --sweep LIST; see --help');
  let config: Config;
  if (f.config) {
    if (f.ranks !== undefined) throw new InputError('simulate: --ranks comes from the config; drop one of --ranks and --config');
    if (f.batch === '-' && f.config === '-') throw new InputError('--batch and --config cannot both be stdin');
    config = parseConfig(await readInput(f.config, '--config', io));
  } else if (f.ranks !== undefined) {
    config = configFromModel(model, intFlag(f.ranks, '--ranks', 1, 1, MAX_RANKS), ranksPerNode);
  } else {
    throw new InputError(`simulate: --batch needs --config FILE or --ranks N (the config then follows --model ${model.name})`);
  }
  const batch = parseBatch(await readInput(f.batch, '--batch', io), config);
  const note = costMismatch(config, opts);
  const sim = await simulateBatch(batch, config, opts);
  if (note) io.stderr(note);
  io.stdout(f.json ? JSON.stringify(simulationJson(sim, model, gpu), null, 2) + '\n' : formatSimulation(sim, model, gpu));
  return 0;
}
