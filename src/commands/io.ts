// What a command sees of the process: its output streams and stdin. The CLI passes the real
// ones (main.ts); tests pass strings.
export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readStdin: () => Promise<string>;
  /**
   * Resolves once what went to stdout is written; rejects with a one-line InputError when it
   * could not be (a full disk, a reader that went away). For a command that reports success on
   * stderr after its output: the report must not follow output that was lost. Absent in tests.
   */
  flushStdout?: () => Promise<void>;
}
