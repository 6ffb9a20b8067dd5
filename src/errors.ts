// One error type for everything a user can get wrong. The CLI prints its message as a single
// line and exits non-zero; anything else escaping is a bug and is reported as such.

/**
 * Characters a terminal would not show (controls, a byte-order mark, zero-width and bidi marks):
 * spelled \uXXXX in a message so that a stray one in the input can be seen and found.
 */
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\ufeff\ufff9-\ufffb]/g;

export class InputError extends Error {
  constructor(message: string) {
    super(message.replace(/\s*\n\s*/g, ' ').replace(INVISIBLE, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
    this.name = 'InputError';
  }
}

/** `where` is e.g. "batch line 17, field \"image\"" or "config phases[1].cost.perToken". */
export function inputError(where: string, what: string): InputError {
  return new InputError(`${where}: ${what}`);
}

/**
 * A user's value, short, as JSON would spell it, for a message: bounded in time and length
 * whatever it is (an array of a million numbers, JSON nested 10,000 deep, a 100 MB string).
 */
export function describe(v: unknown, max = 40): string {
  const s = preview(v, 3, max + 1);
  return s.length > max ? s.slice(0, max - 3) + '...' : s;
}

function preview(v: unknown, depth: number, budget: number): string {
  if (typeof v === 'string') return JSON.stringify(v.length > budget ? v.slice(0, budget) : v);
  if (typeof v !== 'object' || v === null) return JSON.stringify(v) ?? String(v);
  if (depth === 0) return Array.isArray(v) ? '[...]' : '{...}';
  const parts: string[] = [];
  let used = 0;
  const entries = Array.isArray(v) ? v : Object.keys(v);
  for (let i = 0; i < entries.length && used <= budget; i++) {
    const p = Array.isArray(v)
      ? preview(v[i], depth - 1, budget - used)
      : `${JSON.stringify(entries[i])}:${preview((v as Record<string, unknown>)[entries[i] as string], depth - 1, budget - used)}`;
    parts.push(p);
    used += p.length + 1;
  }
  const body = parts.join(',') + (parts.length < entries.length ? ',...' : '');
  return Array.isArray(v) ? `[${body}]` : `{${body}}`;
}
