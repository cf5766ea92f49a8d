/**
 * What a CLI command may touch: its output streams and environment. Commands take this instead of
 * reaching for `process` so that tests can run them in-process and capture exact output.
 */
export interface CliIo {
  /** Writes to standard output (no newline added). */
  readonly stdout: (text: string) => void
  /** Writes to standard error (no newline added). */
  readonly stderr: (text: string) => void
  /** The environment (`SSEHUB_*` variables). */
  readonly env: Readonly<Record<string, string | undefined>>
  /** Aborted on SIGINT/SIGTERM: a long-running command stops and returns its exit code. */
  readonly signal: AbortSignal
}

/** A bad command line: the message is printed as one line on stderr and the process exits 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}
