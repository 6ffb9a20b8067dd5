// Minimal option parsing for the simulate and config commands: `--key value`, `--key=value`,
// and boolean flags. Unknown options are errors, so a typo never silently falls back to a default.
import { InputError } from '../errors.js';

export interface ParsedArgs {
  values: Map<string, string>;
  flags: Set<string>;
}

export function parseArgs(args: string[], valued: readonly string[], booleans: readonly string[], command: string): ParsedArgs {
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) throw new InputError(`${command}: unexpected argument "${a}"`);
    const eq = a.indexOf('=');
    const key = eq >= 0 ? a.slice(2, eq) : a.slice(2);
    if (booleans.includes(key)) {
      if (eq >= 0) throw new InputError(`${command}: --${key} takes no value`);
      flags.add(key);
    } else if (valued.includes(key)) {
      const v = eq >= 0 ? a.slice(eq + 1) : args[++i];
      if (v === undefined) throw new InputError(`${command}: --${key} needs a value`);
      if (key === 'set' && values.has('set')) values.set('set', values.get('set') + ',' + v);
      else values.set(key, v);
    } else {
      const known = [...valued, ...booleans].map((k) => '--' + k).join(', ');
      throw new InputError(`${command}: unknown option "--${key}" (options: ${known})`);
    }
  }
  return { values, flags };
}

export function intOption(p: ParsedArgs, key: string, fallback: number, min = 1): number {
  const v = p.values.get(key);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new InputError(`--${key}: must be an integer ≥ ${min}, got "${v}"`);
  return n;
}

export function numberOption(p: ParsedArgs, key: string, fallback: number, check: (n: number) => boolean, what: string): number {
  const v = p.values.get(key);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new InputError(`--${key}: must be ${what}, got "${v}"`);
  return n;
}

/** `--sweep 8,64,256` → [8, 64, 256]: positive integers, strictly increasing order not required. */
export function intList(v: string, key: string): number[] {
  const parts = v.split(',').map((s) => s.trim());
  const out = parts.map(Number);
  if (parts.length === 0 || parts.some((s, i) => s === '' || !Number.isInteger(out[i]) || out[i]! < 1)) {
    throw new InputError(`--${key}: expected a comma-separated list of positive integers, got "${v}"`);
  }
  return out;
}

/** `--set interBw=20e9,achievable=0.4` → { interBw: 2e10, achievable: 0.4 }. */
export function keyValues(v: string | undefined, key: string): Record<string, number> {
  const out: Record<string, number> = {};
  if (v === undefined) return out;
  for (const part of v.split(',')) {
    const eq = part.indexOf('=');
    const n = Number(part.slice(eq + 1));
    if (eq <= 0 || part.slice(eq + 1).trim() === '' || !Number.isFinite(n)) {
      throw new InputError(`--${key}: expected FIELD=NUMBER[,FIELD=NUMBER...], got "${part}"`);
    }
    out[part.slice(0, eq).trim()] = n;
  }
  return out;
}
