// Newline-delimited input with size limits. readline would buffer an arbitrarily long line in
// memory before we could refuse it; this splitter stops keeping a line's bytes once it passes
// the byte limit or holds more JSON values than the value limit (counted as commas, "[" and "{",
// and only on lines long enough to hold that many), and reports it as oversized when its newline arrives,
// so one huge (or endless) request costs a bounded amount of memory and the server goes on with
// the next line.

export type Line =
  | { kind: 'line'; text: string }
  /** `head`: the line's first bytes (to recover its id for the error response). */
  | { kind: 'oversized'; bytes: number; head: string; reason: 'bytes' | 'values' };

const HEAD_BYTES = 256;

/** JSON values in `buf` as the limit counts them: its commas, "[" and "{" (MAX_JSON_VALUES). */
function valueMarks(buf: Buffer): number {
  let n = 0;
  for (let i = 0; i < buf.length; i++) {
    const c = buf[i];
    if (c === 0x2c || c === 0x5b || c === 0x7b) n++;
  }
  return n;
}

export async function* readLines(
  input: AsyncIterable<Buffer | string> | Iterable<Buffer | string>,
  maxBytes: number,
  maxValues = Infinity,
): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let size = 0;          // bytes of the current line so far (kept or not)
  let head: Buffer | null = null; // set once the current line went over a limit
  let reason: 'bytes' | 'values' = 'bytes';
  let values = -1;       // value marks so far, counted once the line is longer than maxValues

  const finish = (): Line => {
    const line: Line = head
      ? { kind: 'oversized', bytes: size, head: head.toString('utf8'), reason }
      : { kind: 'line', text: Buffer.concat(parts, size).toString('utf8') };
    parts = [];
    size = 0;
    head = null;
    values = -1;
    return line;
  };

  // Keep only a prefix, for the id; drop the rest of this line as it streams past.
  const refuse = (piece: Buffer, why: 'bytes' | 'values'): void => {
    head = Buffer.concat([...parts, piece]).subarray(0, HEAD_BYTES);
    parts = [];
    reason = why;
  };

  const take = (piece: Buffer): void => {
    if (piece.length === 0) return;
    if (!head && size + piece.length > maxBytes) refuse(piece, 'bytes');
    if (!head && size + piece.length > maxValues) {
      if (values < 0) values = parts.reduce((n, p) => n + valueMarks(p), 0);
      values += valueMarks(piece);
      if (values >= maxValues) refuse(piece, 'values');
    }
    if (!head) parts.push(piece);
    size += piece.length;
  };

  for await (const chunk of input) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      if (nl < 0) break;
      take(buf.subarray(start, nl));
      yield finish();
      start = nl + 1;
    }
    take(buf.subarray(start));
  }
  // A last request without a trailing newline still counts.
  if (size > 0 || head) yield finish();
}
