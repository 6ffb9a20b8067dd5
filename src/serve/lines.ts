// Newline-delimited input with a size limit. readline would buffer an arbitrarily long line in
// memory before we could refuse it; this splitter stops keeping a line's bytes once it passes
// the limit and reports it as oversized when its newline arrives, so one huge (or endless)
// request costs a bounded amount of memory and the server goes on with the next line.

export type Line =
  | { kind: 'line'; text: string }
  /** `head`: the line's first bytes (to recover its id for the error response). */
  | { kind: 'oversized'; bytes: number; head: string };

const HEAD_BYTES = 256;

export async function* readLines(input: AsyncIterable<Buffer | string> | Iterable<Buffer | string>, maxBytes: number): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let size = 0;          // bytes of the current line so far (kept or not)
  let head: Buffer | null = null; // set once the current line went over the limit

  const finish = (): Line => {
    const line: Line = head
      ? { kind: 'oversized', bytes: size, head: head.toString('utf8') }
      : { kind: 'line', text: Buffer.concat(parts, size).toString('utf8') };
    parts = [];
    size = 0;
    head = null;
    return line;
  };

  const take = (piece: Buffer): void => {
    if (piece.length === 0) return;
    if (!head && size + piece.length > maxBytes) {
      // Keep only a prefix, for the id; drop the rest of this line as it streams past.
      head = Buffer.concat([...parts, piece]).subarray(0, HEAD_BYTES);
      parts = [];
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
