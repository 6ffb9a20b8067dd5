// The one flag parser of every command (and of the benchmarks): `--key value`, `--key=value`,
// boolean flags, `-h`/`--help`. Strict: an unknown option, a missing value or a stray argument
// is an InputError naming it, so a typo never silently falls back to a default. Then the value
// readers the commands share, each with the same one-line message shape ("--flag: must be …").
import { open, writeFile, type FileHandle } from 'node:fs/promises';
import { InputError } from '../errors.js';
import { MAX_INPUT_BYTES } from '../input.js';
import type { CliIO } from './io.js';

export interface FlagSpec {
  type: 'string' | 'boolean';
  /** A repeated string flag joins its values with commas (e.g. `--set a=1 --set b=2`); default: the last wins. */
  join?: boolean;
}

export type FlagSpecs = Record<string, FlagSpec>;

export type Flags<S extends FlagSpecs> = { [K in keyof S]?: S[K]['type'] extends 'boolean' ? boolean : string };

/**
 * Parses `args` for `command` (named in messages). Returns 'help' when -h or --help is among the
 * arguments; the caller prints its usage.
 */
export function parseFlags<S extends FlagSpecs>(command: string, args: readonly string[], spec: S): Flags<S> | 'help' {
  if (args.some((a) => a === '--help' || a === '-h')) return 'help';
  const out: Record<string, string | boolean> = {};
  const where = `${command} arguments`;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('--') || a === '--') throw new InputError(`${where}: unexpected argument ${JSON.stringify(a)}`);
    const eq = a.indexOf('=');
    const key = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    const s = Object.hasOwn(spec, key) ? spec[key] : undefined;
    if (!s) {
      const known = Object.keys(spec).map((k) => '--' + k).join(', ');
      throw new InputError(`${where}: unknown option "--${key}" (options: ${known})`);
    }
    if (s.type === 'boolean') {
      if (eq >= 0) throw new InputError(`${where}: --${key} takes no value`);
      out[key] = true;
      continue;
    }
    let v: string | undefined;
    if (eq >= 0) v = a.slice(eq + 1);
    else {
      v = args[i + 1];
      // The next option is not this one's value (`--out --verbose` is a forgotten value).
      if (v === undefined || (v.startsWith('--') && v.length > 2)) throw new InputError(`${where}: --${key} needs a value`);
      i++;
    }
    out[key] = s.join && typeof out[key] === 'string' ? `${out[key]},${v}` : v;
  }
  return out as Flags<S>;
}

/** A usage line's option list from the spec: `[--a VALUE] [--b]`. */
export function optionList(spec: FlagSpecs): string {
  return Object.entries(spec).map(([k, s]) => (s.type === 'boolean' ? `[--${k}]` : `[--${k} ${k.toUpperCase().replace(/-/g, '_')}]`)).join(' ');
}

export function oneOf<T extends string>(v: string | undefined, allowed: readonly T[], flag: string, dflt: T): T {
  if (v === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(v)) throw new InputError(`${flag}: must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

export function intFlag(v: string | undefined, flag: string, dflt: number, min = 1, max = Number.MAX_SAFE_INTEGER): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (v.trim() === '' || !Number.isInteger(x) || x < min) throw new InputError(`${flag}: must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  if (x > max) throw new InputError(`${flag}: must be at most ${max}, got ${v}`);
  return x;
}

export function numberFlag(v: string | undefined, flag: string, dflt: number, check: (n: number) => boolean, what: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new InputError(`${flag}: must be ${what}, got ${JSON.stringify(v)}`);
  return n;
}

/** `8,64,256` → [8, 64, 256]: positive integers, any order. */
export function intList(v: string, flag: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  const out = parts.map(Number);
  if (parts.some((s, i) => s === '' || !Number.isInteger(out[i]) || out[i] < 1)) {
    throw new InputError(`${flag}: expected a comma-separated list of positive integers, got ${JSON.stringify(v)}`);
  }
  return out;
}

/** `interBw=20e9,achievable=0.4` → { interBw: 2e10, achievable: 0.4 }. */
export function keyValues(v: string | undefined, flag: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (v === undefined) return out;
  for (const part of v.split(',')) {
    const eq = part.indexOf('=');
    const n = Number(part.slice(eq + 1));
    if (eq <= 0 || part.slice(eq + 1).trim() === '' || !Number.isFinite(n)) {
      throw new InputError(`${flag}: expected FIELD=NUMBER[,FIELD=NUMBER...], got ${JSON.stringify(part)}`);
    }
    out[part.slice(0, eq).trim()] = n;
  }
  return out;
}

/** A file's text, or stdin for "-"; `what` names the flag in the error. At most MAX_INPUT_BYTES. */
export async function readInput(path: string, what: string, io: CliIO): Promise<string> {
  if (path === '-') return io.readStdin();
  const where = `${what} ${JSON.stringify(path)}`;
  let file: FileHandle | undefined;
  try {
    file = await open(path, 'r');
    const { size } = await file.stat();
    if (size > MAX_INPUT_BYTES) throw overLimit(where, size);
    // A pipe or device reports no size: read it in chunks, up to the limit.
    return size > 0 ? await file.readFile('utf8') : await readCapped(file.createReadStream({ autoClose: false }), where);
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(`${where}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  } finally {
    await file?.close();
  }
}

function overLimit(where: string, bytes: number | string): InputError {
  return new InputError(`${where}: ${bytes} bytes is over the limit of ${MAX_INPUT_BYTES} bytes (256 MiB) for one input; split the batch`);
}

/** A stream's bytes as text, refused once past MAX_INPUT_BYTES (memory stays bounded). */
export async function readCapped(chunks: AsyncIterable<Buffer | string>, where: string): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const c of chunks) {
    const b = typeof c === 'string' ? Buffer.from(c) : c;
    size += b.length;
    if (size > MAX_INPUT_BYTES) throw overLimit(where, `more than ${MAX_INPUT_BYTES}`);
    parts.push(b);
  }
  return Buffer.concat(parts, size).toString('utf8');
}

/** Writes a file a flag names; a failure is an InputError naming the flag and the reason. */
export async function writeOutput(path: string, text: string, flag: string): Promise<void> {
  try {
    await writeFile(path, text);
  } catch (e) {
    throw new InputError(`${flag} ${JSON.stringify(path)}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
