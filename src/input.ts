// Stage 1: parse and validate the config and the batch. Everything a user can get wrong is
// caught here with a one-line error naming the line and the field, before any planning starts.
import { describe, inputError } from './errors.js';
import { numericIdProblem, spellingsOf, type JsonPath } from './json-numbers.js';
import type { Batch, Config, CostModel, Example, MicroBatchConfig, PhaseConfig } from './types.js';

const MAX_U32 = 0xffffffff;
export const MAX_RANKS = 65536;

// Limits on one batch (a CLI batch file or one sidecar request), chosen so that a plan at the
// limits fits the default Node heap of a 24 GB box with room to spare (docs/BENCHMARKS.md). Each
// is checked before the allocation it protects, and passing one is a one-line error.
/** Examples per batch. */
export const MAX_EXAMPLES = 1 << 20;
/** Segments (lengths, over all modalities) per batch. */
export const MAX_SEGMENTS = 1 << 22;
/**
 * JSON values on one batch line or in one sidecar request, counted before parsing as the commas,
 * "[" and "{" in the text (each value but the first in a container follows a comma; every
 * container opens with a bracket).
 */
export const MAX_JSON_VALUES = 1 << 24;
/** Bytes of one CLI input (batch or config); the sidecar's --max-request-bytes defaults to the same. */
export const MAX_INPUT_BYTES = 256 * 1024 * 1024;

/**
 * Whether `text` holds MAX_JSON_VALUES values or more (see there), which only a text at least
 * that long can. Cheap, and done before JSON.parse, whose memory grows with the values.
 */
export function overValueLimit(text: string): boolean {
  if (text.length < MAX_JSON_VALUES) return false;
  let values = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if ((c === 0x2c || c === 0x5b || c === 0x7b) && ++values >= MAX_JSON_VALUES) return true; // , [ {
  }
  return false;
}
const own = (o: Record<string, unknown>, k: string): unknown => (Object.hasOwn(o, k) ? o[k] : undefined);

/**
 * A map from user-chosen names (modalities) to values: no prototype, so a modality named
 * "__proto__" or "constructor" is a plain key like any other.
 */
export function record<T>(): Record<string, T> {
  return Object.create(null) as Record<string, T>;
}

/** A leading UTF-8 byte-order mark (as some editors save JSON) is not part of the JSON. */
export function stripBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function positiveInt(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_U32) {
    throw inputError(where, `must be a positive integer, got ${describe(v)}`);
  }
  return v;
}

function nonNegativeNumber(v: unknown, where: string): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
    throw inputError(where, `must be a non-negative number, got ${describe(v)}`);
  }
  return v;
}

function optionalBoolean(v: unknown, where: string): boolean | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'boolean') throw inputError(where, `must be true or false, got ${describe(v)}`);
  return v;
}

function checkKeys(obj: Record<string, unknown>, allowed: string[], where: string): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) throw inputError(`${where}`, `unknown field "${k}" (allowed: ${allowed.join(', ')})`);
  }
}

function parseCost(v: unknown, where: string): CostModel {
  if (!isObject(v)) throw inputError(where, `must be an object like {"perItem":40,"perToken":1,"perTokenSquared":0.00025}, got ${describe(v)}`);
  checkKeys(v, ['perItem', 'perToken', 'perTokenSquared'], where);
  const cost: CostModel = {};
  for (const k of ['perItem', 'perToken', 'perTokenSquared'] as const) {
    if (v[k] !== undefined) cost[k] = nonNegativeNumber(v[k], `${where}.${k}`);
  }
  return cost;
}

/** Micro-batch counts past this would not be a training schedule (and fit a Uint16Array index). */
export const MAX_MICRO_BATCHES = 65536;

function parseMicroBatches(v: unknown, where: string): MicroBatchConfig {
  if (!isObject(v)) throw inputError(where, `must be an object like {"maxTokens":16384} or {"count":4}, got ${describe(v)}`);
  checkKeys(v, ['count', 'maxTokens'], where);
  if (v.count === undefined && v.maxTokens === undefined) throw inputError(where, 'needs "count", "maxTokens" or both');
  const mb: MicroBatchConfig = {};
  if (v.count !== undefined) {
    mb.count = positiveInt(v.count, `${where}.count`);
    if (mb.count > MAX_MICRO_BATCHES) throw inputError(`${where}.count`, `must be at most ${MAX_MICRO_BATCHES}, got ${mb.count}`);
  }
  if (v.maxTokens !== undefined) mb.maxTokens = positiveInt(v.maxTokens, `${where}.maxTokens`);
  return mb;
}

function parsePhase(v: unknown, i: number): PhaseConfig {
  const where = `config phases[${i}]`;
  if (!isObject(v)) throw inputError(where, `must be an object, got ${describe(v)}`);
  checkKeys(v, ['name', 'modalities', 'unit', 'cost', 'scale', 'maxTokensPerRank', 'padding', 'equalCount', 'microBatches'], where);
  if (typeof v.name !== 'string' || v.name === '') throw inputError(`${where}.name`, `must be a non-empty string, got ${describe(v.name)}`);
  const name = v.name;
  const w = `config phase "${name}"`;
  if (!Array.isArray(v.modalities) || v.modalities.length === 0 || !v.modalities.every((m) => typeof m === 'string' && m !== '')) {
    throw inputError(`${w} modalities`, `must be a non-empty array of modality names, got ${describe(v.modalities)}`);
  }
  const modalities = v.modalities as string[];
  if (new Set(modalities).size !== modalities.length) throw inputError(`${w} modalities`, 'lists a modality twice');
  if (modalities.includes('id') || modalities.includes('rank')) throw inputError(`${w} modalities`, '"id" and "rank" are reserved batch fields');
  // Item ids are "<exampleId>/<modality>/<k>": a "/" in a modality name would let two different
  // segments share an id ("a" + "b/c" and "a/b" + "c").
  const slashed = modalities.find((m) => m.includes('/'));
  if (slashed !== undefined) throw inputError(`${w} modalities`, `${describe(slashed)} contains "/", which separates the parts of an item id ("<exampleId>/<modality>/<k>")`);
  const unit = v.unit ?? 'segment';
  if (unit !== 'segment' && unit !== 'example') throw inputError(`${w} unit`, `must be "segment" or "example", got ${describe(v.unit)}`);
  const phase: PhaseConfig = { name, modalities, unit, cost: parseCost(v.cost, `${w} cost`) };
  if (v.scale !== undefined) {
    if (!isObject(v.scale)) throw inputError(`${w} scale`, `must be an object of modality → factor, got ${describe(v.scale)}`);
    const scale = record<number>();
    for (const [m, f] of Object.entries(v.scale)) {
      if (!modalities.includes(m)) throw inputError(`${w} scale.${m}`, `"${m}" is not one of this phase's modalities`);
      if (typeof f !== 'number' || !Number.isFinite(f) || f <= 0) throw inputError(`${w} scale.${m}`, `must be a positive number, got ${describe(f)}`);
      scale[m] = f;
    }
    phase.scale = scale;
  }
  if (v.maxTokensPerRank !== undefined) phase.maxTokensPerRank = positiveInt(v.maxTokensPerRank, `${w} maxTokensPerRank`);
  const padding = optionalBoolean(v.padding, `${w} padding`);
  if (padding !== undefined) phase.padding = padding;
  const equalCount = optionalBoolean(v.equalCount, `${w} equalCount`);
  if (equalCount !== undefined) phase.equalCount = equalCount;
  if (v.microBatches !== undefined) phase.microBatches = parseMicroBatches(v.microBatches, `${w} microBatches`);
  return phase;
}

/** Validate a parsed config object (e.g. from a sidecar request). */
export function validateConfig(obj: unknown): Config {
  if (!isObject(obj)) throw inputError('config', `must be a JSON object, got ${describe(obj)}`);
  checkKeys(obj, ['ranks', 'ranksPerNode', 'phases', 'bytesPerToken'], 'config');
  const ranks = positiveInt(obj.ranks, 'config ranks');
  // Rank pairs are keyed as src · R + dst in u32 arithmetic: R² must stay within 2^32.
  if (ranks > MAX_RANKS) throw inputError('config ranks', `must be at most ${MAX_RANKS}, got ${ranks}`);
  const ranksPerNode = obj.ranksPerNode === undefined ? Math.min(8, ranks) : positiveInt(obj.ranksPerNode, 'config ranksPerNode');
  if (!Array.isArray(obj.phases) || obj.phases.length === 0) throw inputError('config phases', `must be a non-empty array, got ${describe(obj.phases)}`);
  const phases = obj.phases.map(parsePhase);
  const names = new Set<string>();
  for (const p of phases) {
    if (names.has(p.name)) throw inputError('config phases', `phase name "${p.name}" appears twice`);
    names.add(p.name);
  }
  const config: Config = { ranks, ranksPerNode, phases };
  if (obj.bytesPerToken !== undefined) {
    if (!isObject(obj.bytesPerToken)) throw inputError('config bytesPerToken', `must be an object of modality → bytes, got ${describe(obj.bytesPerToken)}`);
    const known = modalitiesOf(config);
    const bpt = record<number>();
    for (const [m, b] of Object.entries(obj.bytesPerToken)) {
      if (!known.includes(m)) throw inputError(`config bytesPerToken.${m}`, `"${m}" is not a modality of any phase`);
      bpt[m] = nonNegativeNumber(b, `config bytesPerToken.${m}`);
    }
    config.bytesPerToken = bpt;
  }
  return config;
}

export function parseConfig(text: string): Config {
  let obj: unknown;
  try {
    obj = JSON.parse(stripBom(text));
  } catch (e) {
    throw inputError('config', `malformed JSON (${(e as Error).message.split('\n')[0]})`);
  }
  return validateConfig(obj);
}

/** Every modality of the config, in order of first appearance across phases. */
export function modalitiesOf(config: Config): string[] {
  const out: string[] = [];
  for (const p of config.phases) for (const m of p.modalities) if (!out.includes(m)) out.push(m);
  return out;
}

/** Incrementally builds the CSR batch from validated examples. */
/** How large a batch may be: the JSON inputs' limits (README), which a library caller may raise. */
export interface BatchLimits {
  maxExamples: number;
  maxSegments: number;
}

const DEFAULT_BATCH_LIMITS: BatchLimits = { maxExamples: MAX_EXAMPLES, maxSegments: MAX_SEGMENTS };

function batchBuilder(config: Config, limits: BatchLimits = DEFAULT_BATCH_LIMITS) {
  const { maxExamples, maxSegments } = limits;
  const modalities = modalitiesOf(config);
  const known = new Set(modalities);
  const ids: string[] = [];
  const ranks: number[] = [];
  const lines: number[] = [];
  const seen = new Map<string, number>(); // id -> index of its first example
  const wheres: string[] = [];            // where each example came from, for duplicate-id errors
  let segmentCount = 0;
  const lens: number[][] = modalities.map(() => []);
  const offs: number[][] = modalities.map(() => [0]);

  // The error's location is built only when there is an error: a batch has millions of lengths.
  function checkLength(v: unknown, where: string, m: string, k: number): number {
    if (typeof v === 'number' && v >= 0 && v <= MAX_U32 && Number.isInteger(v)) return v;
    const tooLong = typeof v === 'number' && Number.isInteger(v) && v > MAX_U32;
    throw inputError(`${where}, field "${m}"${k < 0 ? '' : `[${k}]`}`, tooLong ? `length must be at most ${MAX_U32} (2^32-1), got ${v}` : `length must be a non-negative integer, got ${describe(v)}`);
  }

  function checkRoom(where: string): void {
    if (ids.length >= maxExamples) throw inputError(where, `a batch holds at most ${maxExamples} examples; split it`);
  }

  function checkNewId(sid: string, where: string): void {
    const first = seen.get(sid);
    if (first !== undefined) throw inputError(`${where}, field "id"`, `duplicate id ${JSON.stringify(sid)} (first at ${wheres[first]})`);
    seen.set(sid, ids.length);
  }

  function checkRank(rank: unknown, where: string): number {
    if (typeof rank !== 'number' || !Number.isInteger(rank) || rank < 0 || rank >= config.ranks) {
      throw inputError(`${where}, field "rank"`, `must be an integer in [0, ${config.ranks}), got ${describe(rank)}`);
    }
    return rank;
  }

  function checkSegments(count: number, where: string): void {
    if (segmentCount + count > maxSegments) throw inputError(where, `a batch holds at most ${maxSegments} segments (lengths), this example brings it to ${segmentCount + count}; split it`);
    segmentCount += count;
  }

  function push(sid: string, where: string, rank: number, line: number): void {
    for (let j = 0; j < modalities.length; j++) offs[j].push(lens[j].length);
    ids.push(sid);
    wheres.push(where);
    ranks.push(rank);
    lines.push(line);
  }

  /** `idSpelling`: how the user wrote a numeric id (from the JSON text); default: as JS prints it. */
  function add(ex: unknown, where: string, line = 0, idSpelling?: () => string): void {
    if (!isObject(ex)) throw inputError(where, `must be a JSON object, got ${describe(ex)}`);
    checkRoom(where);
    const id = ex.id;
    if ((typeof id !== 'string' || id === '') && (typeof id !== 'number' || !Number.isFinite(id))) {
      throw inputError(`${where}, field "id"`, `must be a non-empty string or a number, got ${describe(id)}`);
    }
    let sid: string;
    if (typeof id === 'number') {
      // The plan names the id as written, or the id is refused: never a rounded number.
      sid = idSpelling ? idSpelling() : String(id);
      const problem = numericIdProblem(sid, id);
      if (problem) throw inputError(`${where}, field "id"`, problem);
    } else {
      sid = id;
    }
    checkNewId(sid, where);
    const rank = checkRank(ex.rank, where);
    for (const k in ex) {
      if (k !== 'id' && k !== 'rank' && !known.has(k) && Object.hasOwn(ex, k)) {
        throw inputError(`${where}, field ${describe(k, 64)}`, `unknown modality (config declares: ${modalities.join(', ')})`);
      }
    }
    let count = 0;
    for (let j = 0; j < modalities.length; j++) {
      const v = own(ex, modalities[j]);
      count += v === undefined || v === null ? 0 : Array.isArray(v) ? v.length : 1;
    }
    checkSegments(count, where);
    for (let j = 0; j < modalities.length; j++) {
      const m = modalities[j];
      const v = own(ex, m);
      const l = lens[j];
      if (v === undefined || v === null) {
        // no segments of this modality
      } else if (Array.isArray(v)) {
        for (let k = 0; k < v.length; k++) l.push(checkLength(v[k], where, m, k));
      } else {
        l.push(checkLength(v, where, m, -1));
      }
    }
    push(sid, where, rank, line);
  }

  function finish(): Batch {
    const segments = new Map<string, { offsets: Uint32Array; lengths: Uint32Array }>();
    modalities.forEach((m, j) => segments.set(m, { offsets: Uint32Array.from(offs[j]), lengths: Uint32Array.from(lens[j]) }));
    const batch: Batch = { ids, ranks: Int32Array.from(ranks), segments };
    if (lines.some((l) => l > 0)) batch.lines = Uint32Array.from(lines);
    return batch;
  }

  return { add, finish };
}

const topLevelId = (p: JsonPath) => (p.length === 1 && p[0] === 'id' ? 0 : undefined);

/**
 * Each non-blank line of a JSONL text, parsed: `visit(value, where, lineNo, line)` with `where`
 * = "<what> line N". A line over the value limit or not JSON is a one-line error naming it.
 */
export function forEachJsonLine(text: string, what: string, visit: (value: unknown, where: string, lineNo: number, line: string) => void): void {
  text = stripBom(text);
  let lineNo = 0;
  for (let start = 0; start <= text.length;) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    lineNo++;
    const line = text.slice(start, end).trim();
    start = end + 1;
    if (line === '') continue;
    const where = `${what} line ${lineNo}`;
    if (overValueLimit(line)) throw inputError(where, `more than ${MAX_JSON_VALUES} JSON values on one line${what === 'batch' ? ` (a batch holds at most ${MAX_SEGMENTS} segments)` : ''}`);
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (e) {
      throw inputError(where, `malformed JSON (${(e as Error).message.split('\n')[0]})`);
    }
    visit(value, where, lineNo, line);
  }
}

/** Parse a JSONL batch (one example per line; blank lines are skipped). */
export function parseBatch(text: string, config: Config): Batch {
  const b = batchBuilder(config);
  forEachJsonLine(text, 'batch', (obj, where, lineNo, line) => {
    const id = (obj as { id?: unknown } | null)?.id;
    b.add(obj, where, lineNo, typeof id === 'number' ? () => spellingsOf(line, topLevelId)(0, id) : undefined);
  });
  return b.finish();
}

/**
 * Build a batch from example objects (the library's and the sidecar's entry point).
 * `idSpelling(i)`: how example i's numeric id was written, where the caller has the JSON text.
 */
export function batchFromExamples(examples: readonly Example[] | readonly unknown[], config: Config, idSpelling?: (index: number, value: number) => string, limits?: BatchLimits): Batch {
  if (!Array.isArray(examples)) throw inputError('batch', 'must be an array of examples');
  const b = batchBuilder(config, limits);
  for (let i = 0; i < examples.length; i++) {
    const id = (examples[i] as { id?: unknown } | null)?.id;
    b.add(examples[i], `batch example ${i}`, 0, idSpelling && typeof id === 'number' ? () => idSpelling(i, id) : undefined);
  }
  return b.finish();
}
