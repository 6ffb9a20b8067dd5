// `postbalance fit --samples FILE --config FILE`: the config with each sampled phase's cost model
// replaced by a non-negative least-squares fit of measured times (src/fit.ts), on stdout (or
// --out); per phase the fit's R² and residual on stderr. Nothing reaches stdout unless every
// sampled phase could be fitted.
import type { CliIO } from './io.js';
import { InputError, inputError } from '../errors.js';
import { stripBom, validateConfig } from '../input.js';
import { fitConfig, parseSamples } from '../fit.js';
import { parseFlags, readInput, writeOutput } from './args.js';

const FLAGS = {
  samples: { type: 'string' },
  config: { type: 'string' },
  out: { type: 'string' },
} as const;

const USAGE = `usage: postbalance fit --samples FILE|- --config FILE [--out FILE]
Reads measured phase times, one JSON line per rank, phase and step:
  {"phase":"vision","lengths":[576,256,...],"ms":12.3}
(lengths: the items that rank ran in that phase, as the cost model counts them; "rank" and
"step" may be given too), and prints the config with each sampled phase's cost replaced by the
non-negative least-squares fit of perItem, perToken and perTokenSquared (ms = Σ over items of
perItem + perToken·L + perTokenSquared·L²). Phases without samples keep their cost. Per phase,
the fit's R² and residual go to stderr.
`;

const num = (x: number) => Number(x.toPrecision(6)).toString();

export async function main(args: string[], io: CliIO): Promise<number> {
  const f = parseFlags('fit', args, FLAGS);
  if (f === 'help') {
    io.stdout(USAGE);
    return 0;
  }
  if (!f.samples) throw new InputError('--samples FILE (or - for stdin) is required');
  if (!f.config) throw new InputError('--config FILE is required');
  if (f.samples === '-' && f.config === '-') throw new InputError('--samples and --config cannot both be stdin');
  const configText = await readInput(f.config, '--config', io);
  let original: unknown;
  try {
    original = JSON.parse(stripBom(configText));
  } catch (e) {
    throw inputError('config', `malformed JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const config = validateConfig(original);
  const samples = parseSamples(await readInput(f.samples, '--samples', io), config);
  const { config: fitted, fits } = fitConfig(original as Record<string, unknown>, config, samples);
  const report: string[] = [];
  for (const p of config.phases) {
    const fit = fits.get(p.name);
    if (!fit) { report.push(`postbalance fit: phase "${p.name}": no samples, cost kept`); continue; }
    const { perItem, perToken, perTokenSquared } = fit.cost;
    report.push(`postbalance fit: phase "${p.name}": ${fit.samples} samples: perItem ${num(perItem)}, perToken ${num(perToken)}, perTokenSquared ${num(perTokenSquared)}; R² ${fit.r2 === null ? 'n/a (every sample took the same time)' : fit.r2.toFixed(4)}, residual ${num(fit.rmsMs)} ms RMS`);
  }
  const text = JSON.stringify(fitted, null, 2) + '\n';
  if (f.out) await writeOutput(f.out, text, '--out');
  else {
    io.stdout(text);
    await io.flushStdout?.(); // the report says the fit is done: not when the config was lost
  }
  io.stderr(report.join('\n') + '\n');
  return 0;
}
