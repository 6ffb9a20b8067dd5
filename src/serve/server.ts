// The sidecar's request loop, independent of process stdio so tests can drive it in-process.
// Requests are handled strictly one at a time, in order: a response's position in the output
// always matches its request's position in the input, which is what a synchronous client relies
// on (ids are echoed as well, for clients that check).
import type { Accelerator } from '../primitives/accelerator.js';
import { InputError } from '../errors.js';
import { batchFromExamples, MAX_EXAMPLES, MAX_INPUT_BYTES, MAX_JSON_VALUES, MAX_SEGMENTS, validateConfig } from '../input.js';
import { formatCompactPlan, formatPlan, planBatch, planCompact } from '../plan/index.js';
import type { Config, PlanFormat, PlanOptions } from '../types.js';
import { readLines, type Line } from './lines.js';
import { decodeRequest, expandCompact, idJson, itemIdSpellings, recoverIdOut, type IdOut } from './protocol.js';

export const DEFAULT_MAX_REQUEST_BYTES = MAX_INPUT_BYTES;

export interface ServeOptions {
  /** Created once by the caller and reused for every request (a GPU device stays warm). */
  accel: Accelerator;
  /** Lines longer than this get an error response without being parsed. */
  maxRequestBytes?: number;
  /** Defaults for requests that do not set algorithm / exchange / placement. */
  defaults?: PlanOptions;
  /** Output form of requests that do not set "format" (default "full"). */
  format?: PlanFormat;
}

export interface ServeStats {
  requests: number;
  errors: number;
}

const round3 = (x: number) => Math.round(x * 1000) / 1000;

function errorResponse(id: IdOut, message: string): string {
  return `{"id":${idJson(id)},"error":${JSON.stringify(message.replace(/\s*\n\s*/g, ' '))}}`;
}

export class Session {
  private config: Config | null = null;
  readonly stats: ServeStats = { requests: 0, errors: 0 };

  constructor(private readonly opts: ServeOptions) {}

  /** One input line → one response line (no trailing newline), or null for a blank line. */
  async handle(line: Line): Promise<string | null> {
    if (line.kind === 'oversized') {
      this.stats.requests++;
      this.stats.errors++;
      const limit = this.opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES;
      return errorResponse(recoverIdOut(line.head), line.reason === 'values'
        ? `request: more than ${MAX_JSON_VALUES} JSON values (a request holds at most ${MAX_EXAMPLES} examples and ${MAX_SEGMENTS} segments); split it`
        : `request: ${line.bytes} bytes is over the limit of ${limit} bytes (serve --max-request-bytes)`);
    }
    if (line.text.trim() === '') return null;
    this.stats.requests++;
    const t0 = performance.now();
    const idOut: IdOut = { id: null };
    try {
      const req = decodeRequest(line.text, idOut);
      // A request's config is installed only once the whole request has succeeded: one that
      // fails (its batch, or the config itself) leaves the previous config in place.
      const config = req.config !== undefined ? validateConfig(req.config) : this.config;
      if (req.batch === undefined && req.compact === undefined) {
        const c = (this.config = config!);
        return `{"id":${idJson(idOut)},` + JSON.stringify({
          ok: true, ranks: c.ranks, ranksPerNode: c.ranksPerNode, phases: c.phases.map((p) => p.name),
          backend: this.opts.accel.backend, adapter: this.opts.accel.adapter,
        }).slice(1);
      }
      if (!config) throw new InputError('request: no config yet: send {"id":..,"config":{...}} before batches');
      const examples = req.compact !== undefined ? expandCompact(req.compact, config) : req.batch;
      if (!Array.isArray(examples)) throw new InputError('request "batch": must be an array of examples');
      // Numeric ids keep the spelling they have in the request (or are refused): compact ids
      // that default to the example's index need no such check.
      const written = req.compact === undefined ? 'batch' : (req.compact as { ids?: unknown }).ids !== undefined ? 'compact' : null;
      const batch = batchFromExamples(examples, config, written ? itemIdSpellings(line.text, written) : undefined);
      const options = { ...this.opts.defaults, ...req.options };
      // Splice the CLI's exact serialisation in: the plan bytes are the CLI's bytes.
      const text = (req.format ?? this.opts.format ?? 'full') === 'compact'
        ? formatCompactPlan(await planCompact(batch, config, options, this.opts.accel))
        : formatPlan(await planBatch(batch, config, options, this.opts.accel));
      const response = `{"id":${idJson(idOut)},"plan":${text},"serveMs":${round3(performance.now() - t0)}}`;
      this.config = config;
      return response;
    } catch (e) {
      this.stats.errors++;
      if (e instanceof InputError) return errorResponse(idOut, e.message);
      const msg = e instanceof Error ? e.message : String(e);
      if (process.env.POSTBALANCE_DEBUG) process.stderr.write(String(e instanceof Error ? e.stack : e) + '\n');
      return errorResponse(idOut, `internal error: ${msg.split('\n')[0]}`);
    }
  }
}

/** Serve until the input ends. `write` gets one response line (with its newline) at a time. */
export async function serve(
  input: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  write: (s: string) => void | Promise<void>,
  opts: ServeOptions,
): Promise<ServeStats> {
  const session = new Session(opts);
  for await (const line of readLines(input, opts.maxRequestBytes ?? DEFAULT_MAX_REQUEST_BYTES, MAX_JSON_VALUES)) {
    const resp = await session.handle(line);
    if (resp !== null) await write(resp + '\n');
  }
  return session.stats;
}
