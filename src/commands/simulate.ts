// `postbalance simulate`: what post-balancing buys one training step, per strategy.
//   simulate --batch FILE|- --config FILE [--model mllm-84b] [--gpu h100] [--json]
//   simulate --sweep 8,64,256,1024,2560 [--model mllm-84b] [--svg scaling.svg] [--seed S]
// Results go to stdout; notes (e.g. where a chart was written) to stderr.
import { readFileSync, writeFileSync } from 'node:fs';
import type { CliIO } from '../cli.js';
import { InputError } from '../errors.js';
import { parseBatch, parseConfig } from '../input.js';
import { EXCHANGE_SCHEMES, type ExchangeScheme } from '../simulate/alltoall.js';
import { intList, intOption, keyValues, numberOption, parseArgs } from '../simulate/args.js';
import {
  configFromModel, getGpu, getModel, GPU_PRESETS, MODEL_PRESETS, overrideGpu, phaseModels, scaleEncoders,
  FLOPS_PER_COST_UNIT,
} from '../simulate/presets.js';
import { simulateBatch, type SimulateOptions } from '../simulate/strategies.js';
import { formatSimulation, formatSweep, runSweep, simulationJson, sweepSvgs } from '../simulate/sweep.js';
import type { Config } from '../types.js';

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

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new InputError(`--${what}: cannot read "${path}" (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

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
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(USAGE);
    return 0;
  }
  const p = parseArgs(args, [
    'batch', 'config', 'model', 'gpu', 'set', 'encoder-scale', 'sync-exposed', 'scheme', 'ranks', 'ranks-per-node',
    'sweep', 'examples-per-rank', 'seed', 'svg', 'load-ranks',
  ], ['json'], 'simulate');
  const model = scaleEncoders(getModel(p.values.get('model') ?? 'mllm-84b'),
    numberOption(p, 'encoder-scale', 1, (n) => n > 0, 'a positive number'));
  const gpu = overrideGpu(getGpu(p.values.get('gpu') ?? 'h100'), keyValues(p.values.get('set'), 'set'));
  const scheme = (p.values.get('scheme') ?? 'nodewise') as ExchangeScheme;
  if (!EXCHANGE_SCHEMES.includes(scheme)) throw new InputError(`--scheme: must be one of ${EXCHANGE_SCHEMES.join(', ')}, got "${scheme}"`);
  const opts: SimulateOptions = {
    model, gpu, schemes: { orchestrated: scheme },
    syncExposed: numberOption(p, 'sync-exposed', 0.1, (n) => n >= 0 && n <= 1, 'a number in [0, 1]'),
  };
  const json = p.flags.has('json');
  const sweep = p.values.get('sweep');
  if (sweep !== undefined) {
    for (const k of ['batch', 'config', 'ranks']) if (p.values.has(k)) throw new InputError(`simulate: --${k} and --sweep do not go together`);
    const ranks = intList(sweep, 'sweep');
    const examplesPerRank = intOption(p, 'examples-per-rank', 16);
    const seed = intOption(p, 'seed', 1, 0);
    const loadRanks = p.values.has('load-ranks') ? intOption(p, 'load-ranks', 0) : undefined;
    if (loadRanks !== undefined && !ranks.includes(loadRanks)) throw new InputError(`--load-ranks: ${loadRanks} is not one of the sweep's rank counts (${ranks.join(', ')})`);
    const sims = await runSweep({ ...opts, ranks, examplesPerRank, ranksPerNode: intOption(p, 'ranks-per-node', 8), seed });
    const svg = p.values.get('svg');
    if (svg) {
      const charts = sweepSvgs(sims, model, gpu, examplesPerRank, loadRanks);
      const loadPath = svg.replace(/(\.svg)?$/i, '-load.svg');
      writeFileSync(svg, charts.scaling);
      writeFileSync(loadPath, charts.load);
      io.stderr(`wrote ${svg} and ${loadPath}\n`);
    }
    if (json) io.stdout(JSON.stringify({ examplesPerRank, seed, sweep: sims.map((s) => simulationJson(s, model, gpu)) }, null, 2) + '\n');
    else io.stdout(formatSweep(sims, model, gpu, examplesPerRank));
    return 0;
  }
  for (const k of ['examples-per-rank', 'seed', 'svg', 'load-ranks']) if (p.values.has(k)) throw new InputError(`simulate: --${k} only applies to --sweep`);
  const batchPath = p.values.get('batch');
  if (!batchPath) throw new InputError('simulate: give --batch FILE (with --config FILE or --ranks N) or --sweep LIST; see --help');
  let config: Config;
  const configPath = p.values.get('config');
  if (configPath) {
    if (p.values.has('ranks')) throw new InputError('simulate: --ranks comes from the config; drop one of --ranks and --config');
    config = parseConfig(readText(configPath, 'config'));
  } else if (p.values.has('ranks')) {
    config = configFromModel(model, intOption(p, 'ranks', 1), intOption(p, 'ranks-per-node', 8));
  } else {
    throw new InputError(`simulate: --batch needs --config FILE or --ranks N (the config then follows --model ${model.name})`);
  }
  const text = batchPath === '-' ? await io.readStdin() : readText(batchPath, 'batch');
  const batch = parseBatch(text, config);
  const note = costMismatch(config, opts);
  const sim = await simulateBatch(batch, config, opts);
  if (note) io.stderr(note);
  io.stdout(json ? JSON.stringify(simulationJson(sim, model, gpu), null, 2) + '\n' : formatSimulation(sim, model, gpu));
  return 0;
}
