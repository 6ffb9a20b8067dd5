// The process around the CLI: real stdio, and an explicit exit once stdout is flushed (a live
// Dawn instance would otherwise keep Node running). Shared by bin/ and the bundled CLI.
import { run } from './cli.js';

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of process.stdin) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function main(argv: string[] = process.argv.slice(2)): Promise<never> {
  const code = await run(argv, {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
    readStdin,
  });
  return new Promise<never>(() => process.stdout.write('', () => process.exit(code)));
}
