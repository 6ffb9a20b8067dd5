// `postbalance config --model NAME [--ranks N] [--ranks-per-node G] [--encoder-scale F]`: prints
// a planner config (the plan command's --config contract) whose cost model is the preset's
// forward+backward GFLOPs per item, so a plan balances exactly what `simulate` times.
import type { CliIO } from './io.js';
import { InputError } from '../errors.js';
import { MAX_RANKS } from '../input.js';
import { intFlag, numberFlag, parseFlags } from './args.js';
import { configFromModel, getModel, MODEL_PRESETS, scaleEncoders } from '../simulate/presets.js';

const USAGE = 'usage: postbalance config --model NAME [--ranks N] [--ranks-per-node G] [--encoder-scale F]\n' +
  `models: ${Object.keys(MODEL_PRESETS).join(', ')}\n` +
  'prints a planner config (JSON) with costs in GFLOP (forward+backward) per item\n';

const FLAGS = {
  model: { type: 'string' }, ranks: { type: 'string' }, 'ranks-per-node': { type: 'string' }, 'encoder-scale': { type: 'string' },
} as const;

export async function main(args: string[], io: CliIO): Promise<number> {
  const f = parseFlags('config', args, FLAGS);
  if (f === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  if (!f.model) throw new InputError(`config: --model is required (known: ${Object.keys(MODEL_PRESETS).join(', ')})`);
  const ranksPerNode = intFlag(f['ranks-per-node'], '--ranks-per-node', 8);
  const ranks = intFlag(f.ranks, '--ranks', ranksPerNode, 1, MAX_RANKS);
  const scale = numberFlag(f['encoder-scale'], '--encoder-scale', 1, (n) => n > 0, 'a positive number');
  const model = scaleEncoders(getModel(f.model), scale);
  io.stdout(JSON.stringify(configFromModel(model, ranks, ranksPerNode), null, 2) + '\n');
  return 0;
}
