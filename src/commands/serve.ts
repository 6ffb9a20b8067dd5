// `postbalance serve`: the planner as a long-lived sidecar speaking NDJSON over stdin/stdout
// (protocol: src/serve/protocol.ts and docs/PYTORCH.md). A training job starts it once and sends
// one request per step, so Node start-up and GPU set-up are paid once.
import { BACKENDS, getAccelerator, type Backend } from '../backend.js';
import type { CliIO } from './io.js';
import { DEFAULT_MAX_REQUEST_BYTES, serve } from '../serve/server.js';
import { ALGORITHMS, PLAN_FORMATS, type PlanFormat, type PlanOptions } from '../types.js';
import { intFlag, oneOf, parseFlags } from './args.js';

const HELP = `usage: postbalance serve [--backend auto|cpu|gpu] [--algorithm best] [--exchange compact|full]
                         [--placement locality|naive] [--format full|compact] [--max-request-bytes N]

Reads one JSON request per line on stdin, writes one JSON response per line on stdout:
  {"id":1,"config":{...}}                          -> {"id":1,"ok":true,...}
  {"id":2,"batch":[{"id":"ex0","rank":0,...},...]} -> {"id":2,"plan":{...}}
  {"id":3,"compact":{"ranks":[...],"lengths":{...}},"format":"compact"}
Errors answer {"id":..,"error":"..."} and the server goes on. EOF on stdin ends it (exit 0).
`;

const FLAGS = {
  backend: { type: 'string' },
  algorithm: { type: 'string' },
  exchange: { type: 'string' },
  placement: { type: 'string' },
  format: { type: 'string' },
  'max-request-bytes': { type: 'string' },
} as const;

function parseArgs(args: string[]): { backend: Backend; defaults: PlanOptions; format: PlanFormat; maxRequestBytes: number } | 'help' {
  const f = parseFlags('serve', args, FLAGS);
  if (f === 'help') return 'help';
  const defaults: PlanOptions = {};
  if (f.algorithm !== undefined) defaults.algorithm = oneOf(f.algorithm, ALGORITHMS, '--algorithm', 'best');
  if (f.exchange !== undefined) defaults.exchange = oneOf(f.exchange, ['compact', 'full'] as const, '--exchange', 'compact');
  if (f.placement !== undefined) defaults.placement = oneOf(f.placement, ['locality', 'naive'] as const, '--placement', 'locality');
  return {
    backend: oneOf(f.backend, BACKENDS, '--backend', 'auto'),
    defaults,
    format: oneOf(f.format, PLAN_FORMATS, '--format', 'full'),
    // A request line becomes one string: JavaScript's longest is 2^29 - 24 characters.
    maxRequestBytes: intFlag(f['max-request-bytes'], '--max-request-bytes', DEFAULT_MAX_REQUEST_BYTES, 1, 2 ** 29 - 24),
  };
}

export async function main(args: string[], io: CliIO): Promise<number> {
  const parsed = parseArgs(args);
  if (parsed === 'help') {
    io.stdout(HELP);
    return 0;
  }
  // stdout carries responses and nothing else: anything a library logs goes to stderr.
  for (const k of ['log', 'info', 'debug'] as const) console[k] = (...a: unknown[]) => console.error(...a);

  // Created once and kept for the server's life: a GPU device and its pipelines stay warm.
  const accel = await getAccelerator(parsed.backend, { warn: (line) => io.stderr(line + '\n') });
  let outputClosed = false;
  // A client that goes away closes our stdout (EPIPE): stop quietly rather than crash.
  process.stdout.on('error', () => { outputClosed = true; });
  const write = (s: string) => new Promise<void>((resolve, reject) => {
    if (outputClosed) return reject(new Error('stdout closed'));
    process.stdout.write(s, (err) => (err ? reject(err) : resolve()));
  });
  try {
    await serve(process.stdin, write, { accel, maxRequestBytes: parsed.maxRequestBytes, defaults: parsed.defaults, format: parsed.format });
    return 0;
  } catch (e) {
    if (outputClosed) return 0;
    throw e;
  } finally {
    accel.destroy();
  }
}
