// `postbalance config --model NAME [--ranks N] [--ranks-per-node G] [--encoder-scale F]`: prints
// a planner config (the plan command's --config contract) whose cost model is the preset's
// forward+backward GFLOPs per item, so a plan balances exactly what `simulate` times.
import type { CliIO } from '../cli.js';
import { InputError } from '../errors.js';
import { intOption, numberOption, parseArgs } from '../simulate/args.js';
import { configFromModel, getModel, MODEL_PRESETS, scaleEncoders } from '../simulate/presets.js';

export async function main(args: string[], io: CliIO): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.stdout(
      'usage: postbalance config --model NAME [--ranks N] [--ranks-per-node G] [--encoder-scale F]\n' +
      `models: ${Object.keys(MODEL_PRESETS).join(', ')}\n` +
      'prints a planner config (JSON) with costs in GFLOP (forward+backward) per item\n',
    );
    return 0;
  }
  const p = parseArgs(args, ['model', 'ranks', 'ranks-per-node', 'encoder-scale'], [], 'config');
  const name = p.values.get('model');
  if (!name) throw new InputError(`config: --model is required (known: ${Object.keys(MODEL_PRESETS).join(', ')})`);
  const ranksPerNode = intOption(p, 'ranks-per-node', 8);
  const ranks = intOption(p, 'ranks', ranksPerNode);
  const scale = numberOption(p, 'encoder-scale', 1, (n) => n > 0, 'a positive number');
  const model = scaleEncoders(getModel(name), scale);
  io.stdout(JSON.stringify(configFromModel(model, ranks, ranksPerNode), null, 2) + '\n');
  return 0;
}
