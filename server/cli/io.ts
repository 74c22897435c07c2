/** Where a command writes; tests run the CLI in a child process, so this is only the process's own streams. */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  setExitCode: (code: number) => void;
}

export const processIo: CliIo = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
  setExitCode: (code) => {
    process.exitCode = code;
  },
};
