// What a command sees of the process: its output streams and stdin. The CLI passes the real
// ones (main.ts); tests pass strings.
export interface CliIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  readStdin: () => Promise<string>;
}
