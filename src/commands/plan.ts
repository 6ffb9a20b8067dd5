// `postbalance plan`: read a JSONL batch and a JSON config, write the plan (the output contract
// in the README) to stdout or --out. Nothing reaches stdout unless the whole plan succeeded.
import { BACKENDS, getAccelerator } from '../backend.js';
import type { CliIO } from './io.js';
import { InputError } from '../errors.js';
import { parseBatch, parseConfig } from '../input.js';
import { formatCompactPlan, formatPlan, planBatch, planCompact } from '../plan/index.js';
import { ALGORITHMS, PLAN_FORMATS } from '../types.js';
import { oneOf, parseFlags, readInput, writeOutput } from './args.js';

const FLAGS = {
  batch: { type: 'string' },
  config: { type: 'string' },
  algorithm: { type: 'string' },
  backend: { type: 'string' },
  out: { type: 'string' },
  exchange: { type: 'string' },
  placement: { type: 'string' },
  format: { type: 'string' },
  verbose: { type: 'boolean' },
} as const;

const USAGE = `usage: postbalance plan --batch FILE|- --config FILE [--algorithm none|lpt|kk|padded|best]
                        [--backend auto|cpu|gpu] [--exchange compact|full] [--placement locality|naive]
                        [--format full|compact] [--out FILE] [--verbose]
Reads a JSONL batch (one example a line) and a JSON config; writes the plan (one JSON document)
to stdout or --out: item ids per rank (--format full, the default), or per phase the rank of
every item in item order (--format compact). Defaults: --algorithm best, --backend auto,
--exchange compact, --placement locality.
`;

export async function main(args: string[], io: CliIO): Promise<number> {
  const f = parseFlags('plan', args, FLAGS);
  if (f === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  if (!f.batch) throw new InputError('--batch FILE (or - for stdin) is required');
  if (!f.config) throw new InputError('--config FILE is required');
  const algorithm = oneOf(f.algorithm, ALGORITHMS, '--algorithm', 'best');
  const backend = oneOf(f.backend, BACKENDS, '--backend', 'auto');
  const exchange = oneOf(f.exchange, ['compact', 'full'] as const, '--exchange', 'compact');
  const placement = oneOf(f.placement, ['locality', 'naive'] as const, '--placement', 'locality');
  const format = oneOf(f.format, PLAN_FORMATS, '--format', 'full');
  if (f.batch === '-' && f.config === '-') throw new InputError('--batch and --config cannot both be stdin');
  const config = parseConfig(await readInput(f.config, '--config', io));
  const batch = parseBatch(await readInput(f.batch, '--batch', io), config);
  const accel = await getAccelerator(backend, { verbose: f.verbose, warn: (l) => io.stderr(l + '\n') });
  try {
    const options = { algorithm, exchange, placement };
    const text = (format === 'compact'
      ? formatCompactPlan(await planCompact(batch, config, options, accel))
      : formatPlan(await planBatch(batch, config, options, accel))) + '\n';
    if (f.out) await writeOutput(f.out, text, '--out');
    else io.stdout(text);
  } finally {
    accel.destroy();
  }
  return 0;
}
