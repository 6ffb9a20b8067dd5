// Numbers as the user wrote them. JSON.parse keeps only a number's float64 value, so an id
// written 9223372036854775807 reads back as 9223372036854775808 and 1e3 as 1000: a plan naming
// those would name items the user never wrote. These helpers recover a number's source text
// from JSON text that JSON.parse has already accepted, so ids can be checked against it.

export type JsonPath = readonly (string | number)[];

/**
 * True when some number token of `text` might be spelled differently from its value's shortest
 * form (a fraction, an exponent, -0). Without one, every number token is a plain integer, and a
 * value that is a safe integer is spelled exactly String(value): no scan is needed.
 */
export function mayRespell(text: string): boolean {
  return /[0-9][.eE]|-0/.test(text);
}

/**
 * Calls `onNumber` with the path and source text of every number in `text`, which must be JSON
 * that JSON.parse accepted. Iterative (any depth), one pass, no allocation per value but the
 * number tokens themselves. `path` is live: copy what you keep.
 */
export function scanNumbers(text: string, onNumber: (path: JsonPath, token: string) => void): void {
  const path: (string | number)[] = [];
  const inObject: boolean[] = [];
  let expectKey = false;
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x22) { // "
      const end = stringEnd(text, i);
      if (expectKey) {
        const raw = text.slice(i + 1, end - 1);
        path[path.length - 1] = raw.includes('\\') ? (JSON.parse(text.slice(i, end)) as string) : raw;
      }
      i = end;
    } else if (c === 0x7b || c === 0x5b) { // { [
      const obj = c === 0x7b;
      inObject.push(obj);
      path.push(obj ? '' : 0);
      expectKey = obj;
      i++;
    } else if (c === 0x7d || c === 0x5d) { // } ]
      inObject.pop();
      path.pop();
      i++;
    } else if (c === 0x3a) { // :
      expectKey = false;
      i++;
    } else if (c === 0x2c) { // ,
      if (inObject[inObject.length - 1]) expectKey = true;
      else (path[path.length - 1] as number)++;
      i++;
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) { // - 0-9
      let j = i + 1;
      while (j < n && isNumberChar(text.charCodeAt(j))) j++;
      onNumber(path, text.slice(i, j));
      i = j;
    } else {
      i++; // whitespace, true, false, null
    }
  }
}

function isNumberChar(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === 0x2d; // 0-9 . e E + -
}

/** Index just past the closing quote of the string starting at `start`. */
function stringEnd(text: string, start: number): number {
  let j = start + 1;
  for (;;) {
    const q = text.indexOf('"', j);
    if (q < 0) return text.length;
    let bs = 0;
    for (let k = q - 1; text.charCodeAt(k) === 0x5c; k--) bs++;
    if (bs % 2 === 0) return q + 1;
    j = q + 1;
  }
}

/**
 * How the numbers that `pick` numbers (path → index) were written in `text`: index, value →
 * source text. Scans `text` at most once, and only when some number in it may be spelled
 * differently from its value.
 */
export function spellingsOf(text: string, pick: (path: JsonPath) => number | undefined): (index: number, value: number) => string {
  let respell: boolean | undefined;
  let tokens: string[] | undefined;
  return (index, value) => {
    respell ??= mayRespell(text);
    if (!respell && Number.isSafeInteger(value)) return String(value);
    if (!tokens) {
      const found: string[] = (tokens = []);
      scanNumbers(text, (p, t) => { const k = pick(p); if (k !== undefined) found[k] = t; });
    }
    return tokens[index] ?? String(value);
  };
}

/**
 * Why a numeric id written as `token` (value `v`) cannot name items, or null if it can: only
 * safe integers spelled in their shortest form (what every language prints for an integer)
 * keep their spelling through float64.
 */
export function numericIdProblem(token: string, v: number): string | null {
  if (Number.isSafeInteger(v) && token === String(v)) return null;
  const shown = token.length > 40 ? token.slice(0, 37) + '...' : token;
  const why = !Number.isInteger(v)
    ? 'is not an integer'
    : !Number.isSafeInteger(v)
      ? 'is past 2^53-1, where JSON numbers lose digits'
      : `would read back as ${String(v)}`;
  return `numeric id ${shown} ${why}: send the id as a string ("${shown}")`;
}
