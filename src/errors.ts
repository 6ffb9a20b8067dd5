// One error type for everything a user can get wrong. The CLI prints its message as a single
// line and exits non-zero; anything else escaping is a bug and is reported as such.

export class InputError extends Error {
  constructor(message: string) {
    super(message.replace(/\s*\n\s*/g, ' '));
    this.name = 'InputError';
  }
}

/** `where` is e.g. "batch line 17, field \"image\"" or "config phases[1].cost.perToken". */
export function inputError(where: string, what: string): InputError {
  return new InputError(`${where}: ${what}`);
}
