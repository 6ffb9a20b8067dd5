// The process around the CLI: real stdio, and an explicit exit once stdout is flushed (a live
// Dawn instance would otherwise keep Node running). Shared by bin/ and the bundled CLI.
import { run } from './cli.js';
import { readCapped } from './commands/args.js';
import { InputError } from './errors.js';

const readStdin = () => readCapped(process.stdin, 'stdin');

export async function main(argv: string[] = process.argv.slice(2)): Promise<never> {
  // A plan that cannot be written (a full disk, a reader that went away: EPIPE) is an error, not
  // exit 0: the first failed write is kept and reported once stdout has been flushed.
  let writeError: NodeJS.ErrnoException | null = null;
  const keep = (e: Error | null | undefined) => { if (e && !writeError) writeError = e as NodeJS.ErrnoException; };
  process.stdout.on('error', () => {}); // reported through the write callbacks
  const flushed = () => new Promise<void>((resolve) => process.stdout.write('', () => resolve()));
  const failure = (e: NodeJS.ErrnoException) => `cannot write to stdout (${e.code ?? e.message.split('\n')[0]}): the output is incomplete`;
  let code = await run(argv, {
    stdout: (s) => { process.stdout.write(s, keep); },
    stderr: (s) => process.stderr.write(s),
    readStdin,
    flushStdout: async () => {
      await flushed();
      if (writeError) throw new InputError(failure(writeError));
    },
  });
  await flushed();
  if (writeError && code === 0) {
    process.stderr.write(`postbalance: ${failure(writeError)}\n`);
    code = 1;
  }
  process.exit(code);
}
