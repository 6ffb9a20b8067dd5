// Entry point of the bundled CLI (bench/bundle-gpu.mjs): the TypeScript sources, inlined by esbuild.
import { main } from '../src/main.ts';

await main();
