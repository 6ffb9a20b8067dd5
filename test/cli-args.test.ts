// One flag parser for every command: the same syntax, help and one-line errors everywhere.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../src/cli.js';
import { intFlag, intList, keyValues, numberFlag, oneOf, parseFlags } from '../src/commands/args.js';
import { InputError } from '../src/errors.js';
import { fmtBytes, sparkline, table } from '../src/report.js';

const SPEC = { batch: { type: 'string' }, verbose: { type: 'boolean' }, set: { type: 'string', join: true } } as const;

async function cli(argv: string[]) {
  let out = '', err = '';
  const code = await run(argv, { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => '' });
  return { code, out, err };
}

describe('parseFlags', () => {
  it('reads --key value, --key=value, booleans; the last value wins unless the flag joins', () => {
    expect(parseFlags('x', ['--batch', 'a.jsonl', '--verbose'], SPEC)).toEqual({ batch: 'a.jsonl', verbose: true });
    expect(parseFlags('x', ['--batch=b=c', '--batch', '-'], SPEC)).toEqual({ batch: '-' });
    expect(parseFlags('x', ['--set', 'a=1', '--set=b=2'], SPEC)).toEqual({ set: 'a=1,b=2' });
    expect(parseFlags('x', ['--batch', '-1'], SPEC)).toEqual({ batch: '-1' });
    expect(parseFlags('x', [], SPEC)).toEqual({});
    expect(parseFlags('x', ['--batch', 'f', '-h'], SPEC)).toBe('help');
    expect(parseFlags('x', ['--help'], SPEC)).toBe('help');
  });

  it('names what is wrong in one line', () => {
    const err = (args: string[]) => { try { parseFlags('plan', args, SPEC); return ''; } catch (e) { expect(e).toBeInstanceOf(InputError); return (e as Error).message; } };
    expect(err(['--bogus'])).toBe('plan arguments: unknown option "--bogus" (options: --batch, --verbose, --set)');
    expect(err(['--batch'])).toBe('plan arguments: --batch needs a value');
    expect(err(['--batch', '--verbose'])).toBe('plan arguments: --batch needs a value');
    expect(err(['--verbose=yes'])).toBe('plan arguments: --verbose takes no value');
    expect(err(['batch.jsonl'])).toBe('plan arguments: unexpected argument "batch.jsonl"');
    expect(err(['--constructor'])).toMatch(/unknown option "--constructor"/);
  });

  it('value readers: one message shape, "--flag: must be …, got …"', () => {
    expect(oneOf(undefined, ['a', 'b'] as const, '--x', 'a')).toBe('a');
    expect(() => oneOf('c', ['a', 'b'] as const, '--x', 'a')).toThrow('--x: must be one of a, b, got "c"');
    expect(intFlag('8', '--ranks', 1)).toBe(8);
    expect(() => intFlag('8.5', '--ranks', 1)).toThrow('--ranks: must be an integer ≥ 1, got "8.5"');
    expect(() => intFlag('', '--ranks', 1)).toThrow('--ranks: must be an integer ≥ 1, got ""');
    expect(() => intFlag('-1', '--seed', 1, 0)).toThrow('--seed: must be an integer ≥ 0, got "-1"');
    expect(numberFlag('0.5', '--f', 1, (n) => n > 0, 'positive')).toBe(0.5);
    expect(() => numberFlag('nan', '--f', 1, (n) => n > 0, 'a positive number')).toThrow('--f: must be a positive number, got "nan"');
    expect(intList('8, 64,256', '--sweep')).toEqual([8, 64, 256]);
    expect(() => intList('8,,64', '--sweep')).toThrow('--sweep: expected a comma-separated list of positive integers, got "8,,64"');
    expect(keyValues('interBw=2e10,achievable=0.4', '--set')).toEqual({ interBw: 2e10, achievable: 0.4 });
    expect(() => keyValues('interBw', '--set')).toThrow('--set: expected FIELD=NUMBER[,FIELD=NUMBER...], got "interBw"');
  });
});

describe('every command', () => {
  for (const cmd of ['plan', 'demo', 'simulate', 'config', 'serve', 'fit']) {
    it(`${cmd}: --help prints its usage and exits 0; an unknown option is one line, exit 1`, async () => {
      const help = await cli([cmd, '--help']);
      expect(help.code).toBe(0);
      expect(help.out).toMatch(new RegExp(`^usage:\\s+postbalance ${cmd}`));
      const bad = await cli([cmd, '--frobnicate']);
      expect(bad.code).toBe(1);
      expect(bad.out).toBe('');
      expect(bad.err).toMatch(new RegExp(`^postbalance: ${cmd} arguments: unknown option "--frobnicate" \\(options: --`));
      expect(bad.err.trimEnd().split('\n')).toHaveLength(1);
    });
  }

  it('bad values name the flag, whichever command reads it', async () => {
    expect((await cli(['serve', '--backend', 'tpu'])).err).toBe('postbalance: --backend: must be one of auto, cpu, gpu, got "tpu"\n');
    expect((await cli(['serve', '--max-request-bytes', '0'])).err).toBe('postbalance: --max-request-bytes: must be an integer ≥ 1, got "0"\n');
    expect((await cli(['demo', '--ranks', 'x'])).err).toBe('postbalance: --ranks: must be an integer ≥ 1, got "x"\n');
    expect((await cli(['simulate', '--sweep', '8', '--scheme', 'ring'])).err).toBe('postbalance: --scheme: must be one of flat, nodewise, auto, got "ring"\n');
    expect((await cli(['config', '--model', 'mllm-7b', '--encoder-scale', '-2'])).err).toBe('postbalance: --encoder-scale: must be a positive number, got "-2"\n');
    expect((await cli(['simulate', '--batch', '/nonexistent/b.jsonl', '--ranks', '8'])).err).toBe('postbalance: --batch "/nonexistent/b.jsonl": cannot read (ENOENT)\n');
  });

  it('commands import what they share from commands/ and report.ts, never the dispatcher (no import cycle)', () => {
    const dir = join(import.meta.dirname, '..', 'src', 'commands');
    for (const f of readdirSync(dir)) {
      expect(readFileSync(join(dir, f), 'utf8'), f).not.toMatch(/from '\.\.\/cli\.js'/);
    }
  });
});

describe('report', () => {
  it('aligns tables (left columns padded right, the rest padded left, no trailing blanks)', () => {
    expect(table([['name', 'n'], ['a', '10'], ['long', '2']])).toBe('name   n\na     10\nlong   2\n');
    expect(table([['r', 's', 'ms'], ['8', 'none', '1.5'], ['16', 'orch', '10.25']], 2)).toBe('r   s        ms\n8   none    1.5\n16  orch  10.25\n');
  });

  it('formats bytes in decimal units and draws sparklines to scale', () => {
    expect([0, 999, 1000, 1_500_000, 7.8e9, 3e15].map(fmtBytes)).toEqual(['0 B', '999 B', '1.0 KB', '1.5 MB', '7.8 GB', '3000.0 TB']);
    expect(sparkline([0, 4, 8], 8)).toEqual([' ▄█']);
    expect(sparkline([1, 1, 1], 1, 2)).toEqual(['██', '█']);
  });
});
