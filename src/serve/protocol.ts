// The sidecar's request format (docs/PYTORCH.md): one JSON object per line.
//
//   {"id":1,"config":{...}}                                   set the config for what follows
//   {"id":2,"batch":[{"id":"ex0","rank":0,"text":40,"image":[576]}, ...]}
//   {"id":3,"compact":{"ids":[...],"ranks":[...],"lengths":{"text":[...],"image":[[...],...]}}}
//   optional on a batch request: "algorithm", "exchange", "placement", "format" (as the CLI's flags)
//
// Decoding turns a request into plain values and throws InputError with a one-line message for
// anything malformed; the server turns that into {"id":..,"error":".."}.
import { describe, inputError } from '../errors.js';
import { MAX_EXAMPLES, MAX_SEGMENTS, modalitiesOf, stripBom } from '../input.js';
import { spellingsOf } from '../json-numbers.js';
import { ALGORITHMS, PLAN_FORMATS, type Algorithm, type Config, type Example, type PlanFormat, type PlanOptions } from '../types.js';

export type RequestId = string | number | null;

/** What the server knows of a request's id: its value, and its JSON text as written. */
export interface IdOut {
  id: RequestId;
  /** The id as the request spelled it (a number keeps its digits: 9007199254740993 stays so). */
  json?: string;
}

/** The id for a response: as the request wrote it. */
export function idJson(out: IdOut): string {
  return out.json ?? JSON.stringify(out.id);
}

export interface Request {
  id: RequestId;
  config?: unknown;
  /** Examples in the CLI's JSONL shape (from `batch`, or expanded from `compact`). */
  batch?: unknown;
  compact?: unknown;
  options: PlanOptions;
  /** The plan's output form; unset: the server's default. */
  format?: PlanFormat;
}

const REQUEST_KEYS = ['id', 'config', 'batch', 'compact', 'algorithm', 'exchange', 'placement', 'format'];

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function isId(v: unknown): v is string | number {
  return typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v));
}

/**
 * Best-effort id of a line we cannot (or will not) parse: a request that starts with
 * `{"id":<number or string>` gets its error under that id, so a client waiting for that id is not
 * left guessing. Anything else answers with id null.
 */
export function recoverId(head: string): RequestId {
  return recoverIdOut(head).id;
}

/** recoverId with the id's text as written. */
export function recoverIdOut(head: string): IdOut {
  const m = /^\s*\{\s*"id"\s*:\s*(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|"(?:[^"\\]|\\.)*")\s*[,}]/.exec(stripBom(head));
  if (!m) return { id: null };
  try {
    const v: unknown = JSON.parse(m[1]);
    return isId(v) ? { id: v, json: typeof v === 'number' ? m[1] : undefined } : { id: null };
  } catch {
    return { id: null };
  }
}

/** The request id's source text: from the line's head where it comes first, else by a scan. */
function numberAsWritten(line: string, v: number): string {
  const head = recoverIdOut(line.slice(0, 256));
  if (head.json !== undefined && head.id === v) return head.json;
  return spellingsOf(line, (p) => (p.length === 1 && p[0] === 'id' ? 0 : undefined))(0, v);
}

/**
 * How example i's numeric id was written in the request `line`: batch[i].id, or compact.ids[i].
 * The line is scanned at most once, and only when an id may be spelled unlike its value.
 */
export function itemIdSpellings(line: string, form: 'batch' | 'compact'): (index: number, value: number) => string {
  return spellingsOf(line, form === 'batch'
    ? (p) => (p.length === 3 && p[0] === 'batch' && p[2] === 'id' ? (p[1] as number) : undefined)
    : (p) => (p.length === 3 && p[0] === 'compact' && p[1] === 'ids' ? (p[2] as number) : undefined));
}

/** Parse one line into a request. Throws InputError; `idOut.id` is set as soon as it is known. */
export function decodeRequest(line: string, idOut: IdOut): Request {
  let obj: unknown;
  try {
    obj = JSON.parse(stripBom(line));
  } catch (e) {
    Object.assign(idOut, recoverIdOut(line.slice(0, 256)));
    throw inputError('request', `malformed JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (!isObject(obj)) throw inputError('request', 'must be a JSON object like {"id":1,"batch":[...]}');
  if (isId(obj.id)) {
    idOut.id = obj.id;
    if (typeof obj.id === 'number') idOut.json = numberAsWritten(line, obj.id);
  }
  else if (obj.id === undefined) throw inputError('request', 'has no "id" (a number or a string)');
  else throw inputError('request "id"', `must be a number or a string, got ${describe(obj.id)}`);
  for (const k of Object.keys(obj)) {
    if (!REQUEST_KEYS.includes(k)) throw inputError('request', `unknown field "${k}" (allowed: ${REQUEST_KEYS.join(', ')})`);
  }
  if (obj.batch !== undefined && obj.compact !== undefined) throw inputError('request', 'has both "batch" and "compact": send one');
  if (obj.config === undefined && obj.batch === undefined && obj.compact === undefined) {
    throw inputError('request', 'needs "config", "batch" or "compact"');
  }
  const options: PlanOptions = {};
  if (obj.algorithm !== undefined) {
    if (!ALGORITHMS.includes(obj.algorithm as Algorithm)) throw inputError('request "algorithm"', `must be one of ${ALGORITHMS.join(', ')}, got ${describe(obj.algorithm)}`);
    options.algorithm = obj.algorithm as Algorithm;
  }
  if (obj.exchange !== undefined) {
    if (obj.exchange !== 'compact' && obj.exchange !== 'full') throw inputError('request "exchange"', `must be "compact" or "full", got ${describe(obj.exchange)}`);
    options.exchange = obj.exchange;
  }
  if (obj.placement !== undefined) {
    if (obj.placement !== 'locality' && obj.placement !== 'naive') throw inputError('request "placement"', `must be "locality" or "naive", got ${describe(obj.placement)}`);
    options.placement = obj.placement;
  }
  let format: PlanFormat | undefined;
  if (obj.format !== undefined) {
    if (!PLAN_FORMATS.includes(obj.format as PlanFormat)) throw inputError('request "format"', `must be "full" or "compact", got ${describe(obj.format)}`);
    format = obj.format as PlanFormat;
  }
  return { id: idOut.id, config: obj.config, batch: obj.batch, compact: obj.compact, options, format };
}

/** ex[m] = v as an own field, also for a modality named "__proto__" (an assignment would set the prototype). */
function setField(ex: Example, m: string, v: unknown): void {
  if (m === '__proto__') Object.defineProperty(ex, m, { value: v, enumerable: true, writable: true, configurable: true });
  else ex[m] = v;
}

/**
 * The compact form, column-wise:
 *   ranks:   [r0, r1, ...]                 sampled rank of each example (its length n is the batch size)
 *   ids:     [id0, id1, ...]               optional; default: the example's index 0..n-1
 *   lengths: { modality: column }          each column is either
 *              [len | [len, ...] | null, ...]   n entries, as the JSONL field (null = none), or
 *              {"counts":[c0, ...], "values":[...]}  CSR: example e has the next c_e segments
 * It expands to the same examples the JSONL would hold, so validation, item ids and the plan are
 * exactly the CLI's (errors name "batch example <index>").
 */
export function expandCompact(compact: unknown, config: Config): Example[] {
  if (!isObject(compact)) throw inputError('compact', 'must be an object {"ranks":[...],"lengths":{...}}');
  for (const k of Object.keys(compact)) {
    if (k !== 'ids' && k !== 'ranks' && k !== 'lengths') throw inputError('compact', `unknown field "${k}" (allowed: ids, ranks, lengths)`);
  }
  const { ranks, ids, lengths } = compact;
  if (!Array.isArray(ranks)) throw inputError('compact.ranks', 'must be an array with the sampled rank of each example');
  const n = ranks.length;
  if (n > MAX_EXAMPLES) throw inputError('compact.ranks', `has ${n} examples; a request holds at most ${MAX_EXAMPLES}`);
  if (ids !== undefined && (!Array.isArray(ids) || ids.length !== n)) throw inputError('compact.ids', `must be an array of ${n} ids (one per rank entry)`);
  if (lengths !== undefined && !isObject(lengths)) throw inputError('compact.lengths', 'must be an object of modality → column');
  const known = modalitiesOf(config);
  // CSR columns are sliced into one array per example below: count their segments first.
  let csr = 0;
  for (const col of Object.values(lengths ?? {})) if (isObject(col) && Array.isArray(col.values)) csr += col.values.length;
  if (csr > MAX_SEGMENTS) throw inputError('compact.lengths', `has ${csr} segments; a request holds at most ${MAX_SEGMENTS}`);
  const examples: Example[] = new Array(n);
  for (let e = 0; e < n; e++) examples[e] = { id: ids ? (ids[e] as string | number) : e, rank: ranks[e] as number };
  for (const [m, col] of Object.entries(lengths ?? {})) {
    const where = `compact.lengths.${m}`;
    if (!known.includes(m)) throw inputError(where, `unknown modality (config declares: ${known.join(', ')})`);
    if (Array.isArray(col)) {
      if (col.length !== n) throw inputError(where, `has ${col.length} entries for ${n} examples`);
      for (let e = 0; e < n; e++) if (col[e] !== null && col[e] !== undefined) setField(examples[e], m, col[e]);
    } else if (isObject(col) && Array.isArray(col.counts) && Array.isArray(col.values)) {
      const { counts, values } = col;
      if (counts.length !== n) throw inputError(`${where}.counts`, `has ${counts.length} entries for ${n} examples`);
      let off = 0;
      for (let e = 0; e < n; e++) {
        const c = counts[e];
        if (typeof c !== 'number' || !Number.isInteger(c) || c < 0) throw inputError(`${where}.counts[${e}]`, `must be a non-negative integer, got ${describe(c)}`);
        if (off + c > values.length) throw inputError(`${where}.values`, `has ${values.length} entries, counts need more`);
        if (c > 0) setField(examples[e], m, values.slice(off, off + c));
        off += c;
      }
      if (off !== values.length) throw inputError(`${where}.values`, `has ${values.length} entries, counts sum to ${off}`);
    } else {
      throw inputError(where, 'must be an array with one entry per example, or {"counts":[...],"values":[...]}');
    }
  }
  return examples;
}
