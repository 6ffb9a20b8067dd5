// The id a user wrote is the id in the plan, or one clear error naming the line: never a number
// rounded through float64 (9223372036854775807 → 9223372036854775808), never a respelling
// (1e3 → 1000), never two written ids colliding. Strings carry any id.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { run } from '../src/cli.js';
import { plan } from '../src/index.js';
import { scanNumbers } from '../src/json-numbers.js';
import { cpuAccelerator } from '../src/primitives/accelerator.js';
import { serve } from '../src/serve/server.js';
import type { Config, Example } from '../src/types.js';

const CONFIG: Config = {
  ranks: 2, ranksPerNode: 1,
  phases: [
    { name: 'vision', modalities: ['image'], unit: 'segment', cost: { perToken: 1 } },
    { name: 'llm', modalities: ['text', 'image'], unit: 'example', cost: { perToken: 1 } },
  ],
};
const dir = mkdtempSync(join(tmpdir(), 'pb-ids-'));
const cfgFile = join(dir, 'config.json');
writeFileSync(cfgFile, JSON.stringify(CONFIG));

async function cli(batch: string) {
  let out = '', err = '';
  const code = await run(['plan', '--batch', '-', '--config', cfgFile, '--backend', 'cpu'], { stdout: (s) => { out += s; }, stderr: (s) => { err += s; }, readStdin: async () => batch });
  return { code, out, err };
}

/** Raw response lines of the in-process sidecar. */
async function sidecar(lines: string[]): Promise<string[]> {
  const out: string[] = [];
  await serve([lines.join('\n') + '\n'], (s) => { out.push(s.trimEnd()); }, { accel: cpuAccelerator });
  return out;
}

const allIds = (p: { phases: { ranks: { items: string[] }[] }[] }) => p.phases.map((ph) => ph.ranks.flatMap((r) => r.items).sort());

describe('numeric ids in the CLI', () => {
  it('ids past 2^53 are refused with the digits the user wrote, not a rounded number or a duplicate', async () => {
    const r = await cli('{"id":9223372036854775807,"rank":0,"text":10}\n{"id":9223372036854775806,"rank":1,"text":5}\n');
    expect(r).toEqual({
      code: 1, out: '',
      err: 'postbalance: batch line 1, field "id": numeric id 9223372036854775807 is past 2^53-1, where JSON numbers lose digits: send the id as a string ("9223372036854775807")\n',
    });
    const twins = await cli('{"id":"a","rank":0,"text":1}\n{"id":12345678901234567890,"rank":0,"text":1}\n{"id":12345678901234567891,"rank":0,"text":1}\n');
    expect(twins.err).toMatch(/^postbalance: batch line 2, field "id": numeric id 12345678901234567890 is past 2\^53-1/);
  });

  it('float ids and other spellings that would not read back are refused, naming the line and the spelling', async () => {
    const cases: [string, string][] = [
      ['1e21', 'is past 2^53-1, where JSON numbers lose digits'],
      ['1e-7', 'is not an integer'],
      ['1.5', 'is not an integer'],
      ['1.0', 'would read back as 1'],
      ['1e3', 'would read back as 1000'],
      ['-0', 'would read back as 0'],
      ['9007199254740992', 'is past 2^53-1, where JSON numbers lose digits'],
    ];
    for (const [id, why] of cases) {
      const r = await cli(`{"id":"x","rank":1,"text":2}\n{"text":3,"id":${id},"rank":0}\n`);
      expect(r.err, id).toBe(`postbalance: batch line 2, field "id": numeric id ${id} ${why}: send the id as a string ("${id}")\n`);
      expect(r.code).toBe(1);
      expect(r.out).toBe('');
    }
    // The key may be spelled with an escape; the value is still found.
    expect((await cli('{"\\u0069d":1e3,"rank":0,"text":2}\n')).err).toMatch(/numeric id 1e3 would read back as 1000/);
  });

  it('safe integers keep their spelling, also next to floats on the line; strings carry any id', async () => {
    const r = await cli([
      '{"id":9007199254740991,"rank":0,"text":3.0,"image":[2]}',
      '{"id":-5,"rank":1,"text":4}',
      '{"id":0,"rank":1,"text":1}',
      '{"id":"9223372036854775807","rank":0,"image":[1,2]}',
      '{"id":"1e3","rank":1,"text":1}',
    ].join('\n'));
    expect(r.err).toBe('');
    expect(allIds(JSON.parse(r.out))).toEqual([
      ['9007199254740991/image/0', '9223372036854775807/image/0', '9223372036854775807/image/1'],
      ['-5', '0', '1e3', '9007199254740991', '9223372036854775807'],
    ]);
  });
});

describe('numeric ids in the sidecar and the library', () => {
  it('batch and compact ids: refused with the spelling and example named, or kept as written', async () => {
    const cfg = JSON.stringify({ id: 0, config: CONFIG });
    const out = await sidecar([
      cfg,
      '{"id":1,"batch":[{"id":"a","rank":0,"text":1},{"id":9223372036854775807,"rank":0,"text":1}]}',
      '{"id":2,"compact":{"ids":[5,1e3],"ranks":[0,1],"lengths":{"text":[1,2]}}}',
      '{"id":3,"compact":{"ids":[5,"9223372036854775807"],"ranks":[0,1],"lengths":{"text":[1,2],"image":[null,[4]]}}}',
      '{"id":4,"batch":[{"id":12,"rank":0,"text":1.0},{"id":-3,"rank":1,"text":2}]}',
      '{"id":5,"compact":{"ranks":[0,1,1],"lengths":{"text":[1,2,3]}},"algorithm":"lpt"}',
    ]);
    const r = out.map((l) => JSON.parse(l));
    expect(r[1].error).toBe('batch example 1, field "id": numeric id 9223372036854775807 is past 2^53-1, where JSON numbers lose digits: send the id as a string ("9223372036854775807")');
    expect(r[2].error).toBe('batch example 1, field "id": numeric id 1e3 would read back as 1000: send the id as a string ("1e3")');
    expect(allIds(r[3].plan)).toEqual([['9223372036854775807/image/0'], ['5', '9223372036854775807']]);
    expect(allIds(r[4].plan)).toEqual([[], ['-3', '12']]);
    expect(allIds(r[5].plan)).toEqual([[], ['0', '1', '2']]);
  });

  it('request ids are echoed as written, even past 2^53 and in errors', async () => {
    const out = await sidecar([
      `{"id":9007199254740993,"config":${JSON.stringify(CONFIG)}}`,
      '{"id":12345678901234567891, oops',
      '{"batch":[{"id":"a","rank":0,"text":1}],"id":1.50}',
      '{"id":2e0,"batch":[{"id":"a","rank":9,"text":1}]}',
    ]);
    expect(out[0]).toMatch(/^\{"id":9007199254740993,"ok":true,/);
    expect(out[1]).toMatch(/^\{"id":12345678901234567891,"error":"request: malformed JSON/);
    expect(out[2]).toMatch(/^\{"id":1\.50,"plan":\{/);
    expect(out[3]).toMatch(/^\{"id":2e0,"error":"batch example 0, field \\"rank\\"/);
  });

  it('the library refuses numbers that are not safe integers and spells the others as JavaScript does', async () => {
    const ex = (id: number): Example[] => [{ id, rank: 0, text: 3 }];
    await expect(plan(ex(2 ** 53), CONFIG)).rejects.toThrow('batch example 0, field "id": numeric id 9007199254740992 is past 2^53-1');
    await expect(plan(ex(0.5), CONFIG)).rejects.toThrow('numeric id 0.5 is not an integer');
    expect(allIds(await plan(ex(2 ** 53 - 1), CONFIG))[1]).toEqual(['9007199254740991']);
  });
});

describe('scanNumbers', () => {
  it('finds every number with its path and source text, through strings, escapes and nesting', () => {
    const text = '{"a":[1, -2.50e+3, {"b\\"c":"x\\\\", "d":[[7]]}], "e\\u0069":0,"s":"1.0 ] } [ ,"}';
    const got: [string, string][] = [];
    scanNumbers(text, (p, t) => got.push([JSON.stringify(p), t]));
    expect(got).toEqual([['["a",0]', '1'], ['["a",1]', '-2.50e+3'], ['["a",2,"d",0,0]', '7'], ['["ei"]', '0']]);
    JSON.parse(text); // the scanner's input is JSON that parses
  });
});
