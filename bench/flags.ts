// The benchmarks read their flags with the CLI's parser (src/commands/args.ts): the same syntax
// and errors. Help prints the file's usage; a bad flag prints one line and exits 2.
import { parseFlags, type FlagSpecs, type Flags } from '../src/commands/args.js';

export function benchFlags<S extends FlagSpecs>(name: string, spec: S, usage: string): Flags<S> {
  try {
    const f = parseFlags(name, process.argv.slice(2), spec);
    if (f !== 'help') return f;
    process.stdout.write(usage);
    process.exit(0);
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    process.exit(2);
  }
}
