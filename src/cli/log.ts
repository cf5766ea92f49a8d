/**
 * The log lines of `ssehub serve`: one line per notable event, as readable text or as JSON lines
 * (`--log-format json`), all on stdout, in order (one stream for a collector to read; the level
 * says what matters). The library prints nothing itself: `serve` listens to the hub's and the
 * server's events and writes them here. Events that can come in floods (slow consumers,
 * evictions, auth refusals, errors) go through a {@link LogSampler}: at most one line of a kind
 * per {@link LOG_SAMPLE_WINDOW_MS}, and then one line that counts the ones not written.
 */

/** The formats of `--log-format`. */
export const LOG_FORMATS = ['text', 'json'] as const

/** `text`: `<time> <level> <message> key=value...`; `json`: one JSON object a line. */
export type LogFormat = (typeof LOG_FORMATS)[number]

/** How much a line matters: `info` for the course of things, `warn` for trouble it survives. */
export type LogLevel = 'info' | 'warn' | 'error'

/** A line's fields besides time, level and message; `undefined` ones are left out. */
export type LogFields = Readonly<Record<string, string | number | boolean | null | undefined>>

/**
 * The window of a {@link LogSampler}: of the events of one kind, the first of a window is written
 * with its details, and the others in it are counted, in one line when the window ends. So a kind
 * writes at most two lines per 10 s, whatever the flood.
 */
export const LOG_SAMPLE_WINDOW_MS = 10_000

/** Writes log lines. */
export interface Logger {
  /** Writes one line. */
  log(level: LogLevel, message: string, fields?: LogFields): void
}

/** What {@link createLogger} needs. */
export interface LoggerOptions {
  readonly format: LogFormat
  /** Writes one line (with its `\n`). */
  readonly write: (line: string) => void
  /** The clock. @default () => new Date() */
  readonly now?: () => Date
}

/** A logger that writes each line at once, formatted by {@link formatLogLine}. */
export function createLogger(options: LoggerOptions): Logger {
  const now = options.now ?? ((): Date => new Date())
  return {
    log(level, message, fields = {}) {
      options.write(formatLogLine(options.format, now(), level, message, fields))
    },
  }
}

// A text value that needs no quotes: no space, quote, `=` or control character.
// eslint-disable-next-line no-control-regex -- control characters are what it must catch
const bare = /^[^\s"=\\\u0000-\u001f\u007f]+$/

/**
 * One log line, `\n` included. JSON: `{"time":ISO,"level":..,"msg":..,...fields}`. Text:
 * `<ISO time> <level> <message> key=value...`, a value in JSON quotes when it has spaces, quotes
 * or `=`. A message or value never breaks the line: control characters are escaped in both.
 */
export function formatLogLine(
  format: LogFormat,
  time: Date,
  level: LogLevel,
  message: string,
  fields: LogFields,
): string {
  const defined = Object.entries(fields).filter(([, value]) => value !== undefined)
  if (format === 'json') {
    return `${JSON.stringify({ time: time.toISOString(), level, msg: message, ...Object.fromEntries(defined) })}\n`
  }
  let line = `${time.toISOString()} ${level.padEnd(5)} ${oneLine(message)}`
  for (const [key, value] of defined) {
    const text = String(value)
    line += ` ${key}=${typeof value === 'string' && !bare.test(text) ? JSON.stringify(text) : text}`
  }
  return `${line}\n`
}

/** `text` without its line breaks and other control characters (as JSON escapes them). */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are what it must catch
  return text.replace(/[\u0000-\u001f\u007f]/g, (char) => JSON.stringify(char).slice(1, -1))
}

/** Per kind: until when the window runs, and what it did not write. */
interface Window {
  until: number
  suppressed: number
  level: LogLevel
  timer: NodeJS.Timeout | null
}

/**
 * Rate-limits the lines of flooding kinds: the first event of a kind in a window of `windowMs` is
 * written; the rest are counted, and when the window ends one line (`event=suppressed`,
 * `kind`, `count`) says how many were not written. Timers are unref'd: they never keep the
 * process alive; {@link LogSampler.flush} writes the counts still pending (at shutdown).
 */
export class LogSampler {
  private readonly windows = new Map<string, Window>()

  constructor(
    private readonly logger: Logger,
    private readonly windowMs = LOG_SAMPLE_WINDOW_MS,
    private readonly now: () => number = () => Date.now(),
  ) {}

  /** Writes the event of `kind` (with `event: kind` among its fields), or counts it. */
  event(kind: string, level: LogLevel, message: string, fields: LogFields = {}): void {
    const at = this.now()
    let window = this.windows.get(kind)
    if (window !== undefined && at < window.until) {
      window.suppressed++
      if (window.timer === null) {
        window.timer = setTimeout(() => this.report(kind), window.until - at)
        window.timer.unref()
      }
      return
    }
    if (window === undefined) {
      window = { until: 0, suppressed: 0, level, timer: null }
      this.windows.set(kind, window)
    }
    // A late timer may not have written the last window's count yet: it comes first.
    this.report(kind)
    window.until = at + this.windowMs
    window.level = level
    this.logger.log(level, message, { event: kind, ...fields })
  }

  /** Writes every count still pending, and stops the timers. */
  flush(): void {
    for (const kind of this.windows.keys()) this.report(kind)
  }

  private report(kind: string): void {
    const window = this.windows.get(kind)
    if (window === undefined) return
    if (window.timer !== null) clearTimeout(window.timer)
    window.timer = null
    if (window.suppressed === 0) return
    const count = window.suppressed
    window.suppressed = 0
    this.logger.log(
      window.level,
      `${count} more ${kind} event${count === 1 ? '' : 's'} in the last ${this.windowMs / 1000} s, not logged one by one`,
      { event: 'suppressed', kind, count, windowMs: this.windowMs },
    )
  }
}
