// Entry point of the bundled CLI (bench/bundle-gpu.mjs): the same launcher as bin/, importing
// the TypeScript sources directly so esbuild can inline them.
import { run } from '../src/cli.ts';

const readStdin = async () => {
  const chunks = [];
  for await (const c of process.stdin) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
};
const code = await run(process.argv.slice(2), {
  stdout: (s) => process.stdout.write(s),
  stderr: (s) => process.stderr.write(s),
  readStdin,
});
process.stdout.write('', () => process.exit(code));
