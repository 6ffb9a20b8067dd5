// Small shared helpers for the subcommands: strict flag parsing with one-line errors, and
// reading a file or stdin.
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import type { CliIO } from '../cli.js';
import { InputError } from '../errors.js';

type Options = NonNullable<ParseArgsConfig['options']>;

export type Flags<O extends Options> = { [K in keyof O]?: O[K]['type'] extends 'boolean' ? boolean : string };

export function flags<O extends Options>(args: string[], options: O): Flags<O> {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false }).values as Flags<O>;
  } catch (e) {
    throw new InputError(`arguments: ${(e as Error).message.split('\n')[0]}`);
  }
}

export async function readInput(path: string, what: string, io: CliIO): Promise<string> {
  if (path === '-') return io.readStdin();
  try {
    return await readFile(path, 'utf8');
  } catch (e) {
    throw new InputError(`${what} ${JSON.stringify(path)}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

export function oneOf<T extends string>(v: string | undefined, allowed: readonly T[], flag: string, dflt: T): T {
  if (v === undefined) return dflt;
  if (!(allowed as readonly string[]).includes(v)) throw new InputError(`${flag}: must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

export function intFlag(v: string | undefined, flag: string, dflt: number, min = 1): number {
  if (v === undefined) return dflt;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min) throw new InputError(`${flag}: must be an integer ≥ ${min}, got ${JSON.stringify(v)}`);
  return x;
}
