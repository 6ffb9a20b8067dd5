// `postbalance serve`: the planner as a long-lived sidecar speaking NDJSON over stdin/stdout
// (protocol: src/serve/protocol.ts and docs/PYTORCH.md). A training job starts it once and sends
// one request per step, so Node start-up and GPU set-up are paid once.
import { getAccelerator, type Backend } from '../primitives/backend.js';
import type { CliIO } from '../cli.js';
import { InputError } from '../errors.js';
import { DEFAULT_MAX_REQUEST_BYTES, serve } from '../serve/server.js';
import { ALGORITHMS, type Algorithm, type PlanOptions } from '../types.js';

const HELP = `usage: postbalance serve [--backend auto|cpu|gpu] [--algorithm best] [--exchange compact|full]
                         [--placement locality|naive] [--max-request-bytes N]

Reads one JSON request per line on stdin, writes one JSON response per line on stdout:
  {"id":1,"config":{...}}                          -> {"id":1,"ok":true,...}
  {"id":2,"batch":[{"id":"ex0","rank":0,...},...]} -> {"id":2,"plan":{...}}
  {"id":3,"compact":{"ranks":[...],"lengths":{...}}}
Errors answer {"id":..,"error":"..."} and the server goes on. EOF on stdin ends it (exit 0).
`;

function parseArgs(args: string[]): { backend: Backend; defaults: PlanOptions; maxRequestBytes: number } | 'help' {
  let backend: Backend = 'auto';
  const defaults: PlanOptions = {};
  let maxRequestBytes = DEFAULT_MAX_REQUEST_BYTES;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--help' || a === '-h') return 'help';
    const value = (): string => {
      const v = args[++i];
      if (v === undefined) throw new InputError(`serve ${a}: needs a value`);
      return v;
    };
    switch (a) {
      case '--backend': {
        const v = value();
        if (v !== 'auto' && v !== 'cpu' && v !== 'gpu') throw new InputError(`serve --backend: must be auto, cpu or gpu, got "${v}"`);
        backend = v;
        break;
      }
      case '--algorithm': {
        const v = value();
        if (!ALGORITHMS.includes(v as Algorithm)) throw new InputError(`serve --algorithm: must be one of ${ALGORITHMS.join(', ')}, got "${v}"`);
        defaults.algorithm = v as Algorithm;
        break;
      }
      case '--exchange': {
        const v = value();
        if (v !== 'compact' && v !== 'full') throw new InputError(`serve --exchange: must be compact or full, got "${v}"`);
        defaults.exchange = v;
        break;
      }
      case '--placement': {
        const v = value();
        if (v !== 'locality' && v !== 'naive') throw new InputError(`serve --placement: must be locality or naive, got "${v}"`);
        defaults.placement = v;
        break;
      }
      case '--max-request-bytes': {
        const v = value();
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new InputError(`serve --max-request-bytes: must be a positive integer, got "${v}"`);
        maxRequestBytes = n;
        break;
      }
      default:
        throw new InputError(`serve: unknown option "${a}" (try --help)`);
    }
  }
  return { backend, defaults, maxRequestBytes };
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
    await serve(process.stdin, write, { accel, maxRequestBytes: parsed.maxRequestBytes, defaults: parsed.defaults });
    return 0;
  } catch (e) {
    if (outputClosed) return 0;
    throw e;
  } finally {
    accel.destroy();
  }
}
