#!/usr/bin/env node
// Thin launcher: the compiled CLI lives in dist/ (built by `npm ci` through the prepare script).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const mainPath = fileURLToPath(new URL('../dist/main.js', import.meta.url));
if (!existsSync(mainPath)) {
  process.stderr.write('postbalance: not built yet; run `npm run build` (npm ci does it through `prepare`)\n');
  process.exit(1);
}
const { main } = await import(mainPath);
await main();
