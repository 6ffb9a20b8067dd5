#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cliPath = fileURLToPath(new URL('../dist/src/cli.js', import.meta.url));
if (!existsSync(cliPath)) {
  process.stderr.write('postbalance: not built yet; run `npm run build` (npm ci does it through `prepare`)\n');
  process.exit(1);
}
const { run } = await import(cliPath);
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
// Flush stdout before exiting explicitly: a live Dawn instance would otherwise keep Node running.
process.stdout.write('', () => process.exit(code));
