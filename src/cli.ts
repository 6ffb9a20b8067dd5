// Entry point of the `postbalance` command: dispatches to one module per subcommand so each
// command's code (and its heavy imports, such as the GPU bindings) loads only when used.
import type { CliIO } from './commands/io.js';
import { InputError } from './errors.js';

export type { CliIO } from './commands/io.js';

type CommandMain = (args: string[], io: CliIO) => Promise<number>;

// Literal import() calls keep each command's imports lazy (the GPU bindings load only when a
// command asks for them) while tsc, vitest and esbuild can all resolve them.
const COMMANDS: Record<string, { summary: string; load: () => Promise<{ main: CommandMain }> }> = {
  plan: { summary: 'plan a batch: --batch FILE|- --config FILE [--algorithm best] [--backend auto|cpu|gpu] [--out FILE]', load: () => import('./commands/plan.js') },
  demo: { summary: 'plan a built-in multimodal workload with every algorithm and show before/after', load: () => import('./commands/demo.js') },
  simulate: { summary: 'simulate step time per strategy (none, llm-only, orchestrated); --sweep 8,64,... for a scaling study', load: () => import('./commands/simulate.js') },
  fit: { summary: 'fit each phase\'s cost model to measured times: --samples FILE|- --config FILE [--out FILE]', load: () => import('./commands/fit.js') },
  config: { summary: 'print a planner config derived from a model preset (--model NAME)', load: () => import('./commands/config.js') },
  serve: { summary: 'long-lived planner sidecar speaking NDJSON over stdin/stdout (--backend auto|cpu|gpu)', load: () => import('./commands/serve.js') },
};

export function usage(): string {
  const lines = ['usage: postbalance <command> [options]', '', 'commands:'];
  for (const [name, c] of Object.entries(COMMANDS)) lines.push(`  ${name.padEnd(9)} ${c.summary}`);
  return lines.join('\n') + '\n';
}

export async function run(argv: string[], io: CliIO): Promise<number> {
  const [cmd, ...args] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    io.stdout(usage());
    return cmd ? 0 : 2;
  }
  const entry = COMMANDS[cmd];
  if (!entry) {
    io.stderr(`postbalance: unknown command "${cmd}" (try: ${Object.keys(COMMANDS).join(', ')})\n`);
    return 2;
  }
  try {
    const mod = await entry.load();
    return await mod.main(args, io);
  } catch (e) {
    if (e instanceof InputError) {
      io.stderr(`postbalance: ${e.message}\n`);
      return 1;
    }
    const msg = e instanceof Error ? e.message : String(e);
    io.stderr(`postbalance: internal error: ${msg.split('\n')[0]}\n`);
    if (process.env.POSTBALANCE_DEBUG) io.stderr(String(e instanceof Error ? e.stack : e) + '\n');
    return 70;
  }
}
