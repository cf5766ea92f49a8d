/**
 * `ssehub listen <url>`: prints the events of an SSE stream as they arrive, on the client engine
 * (reconnection per the spec, `Last-Event-ID`, only `200` opens, `204` stops). Each failed
 * attempt is one line on stderr, so that an unreachable URL is never a silent wait.
 */
import { parseArgs } from 'node:util'
import { connect } from '../client/client.js'
import { ErrorCodes, isSseError } from '../errors.js'
import type { ParsedEvent } from '../wire/parse.js'
import { encodeEventText } from '../wire/encode.js'
import { UsageError, type CliIo } from './io.js'

/** The help text of `ssehub listen`, printed by `--help`. */
export const listenHelp = `Usage: ssehub listen <url> [options]

Prints the events of an SSE stream as they arrive. Reconnects per the spec (honouring retry:,
sending Last-Event-ID, backing off while attempts fail) unless --no-reconnect is given; each
failed attempt prints one line on stderr with its cause and the delay before the next one.

Options:
  --json               one JSON object per event and line:
                       {"type": ..., "data": ..., "lastEventId": ...}
  --header 'K: V'      a request header (repeatable)
  --last-event-id ID   start from this event id (sent as Last-Event-ID)
  --max-events N       exit after N events
  --max-attempts N     give up (exit 1) after N reconnection attempts in a row that fail
                       (default: no limit)
  --method METHOD      the request method (default GET, or POST when --data is given)
  --data BODY          the request body (sent again on every reconnection)
  --no-reconnect       stop when the stream ends or the connection fails
  -h, --help           show this help

Without --json, each event is printed as SSE text, followed by a blank line:
  event: <type>
  id: <last event id>     (only when not empty)
  data: <line>            (one per line of data)

As the SSE spec says, only a 200 answer with Content-Type text/event-stream opens a stream
(redirects are followed); 204 means "stop"; any other status is final, not retried.

Exit status: 0 when the server answers 204, after --max-events, when the stream ends with
--no-reconnect, or on SIGINT/SIGTERM; 1 (one line on stderr) on a status other than 200 and 204,
a Content-Type other than text/event-stream, a failed connection with --no-reconnect, or when
--max-attempts is reached; 2 on bad usage.
`

const options = {
  json: { type: 'boolean' },
  header: { type: 'string', multiple: true },
  'last-event-id': { type: 'string' },
  'max-events': { type: 'string' },
  'max-attempts': { type: 'string' },
  method: { type: 'string' },
  data: { type: 'string' },
  'no-reconnect': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

// RFC 9110 token: what a header name or a method may be made of.
const token = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

function parseHeader(text: string): [string, string] {
  const colon = text.indexOf(':')
  const name = colon === -1 ? '' : text.slice(0, colon).trim()
  if (!token.test(name)) {
    throw new UsageError(`--header expects 'Name: value', got ${JSON.stringify(text)}`)
  }
  return [name, text.slice(colon + 1).trim()]
}

function formatEvent(event: ParsedEvent, json: boolean): string {
  if (json) {
    // Key order fixed by the CLI contract.
    return `${JSON.stringify({ type: event.type, data: event.data, lastEventId: event.lastEventId })}\n`
  }
  return encodeEventText(
    event.lastEventId === ''
      ? { event: event.type, data: event.data }
      : { event: event.type, id: event.lastEventId, data: event.data },
  )
}

interface ListenArgs {
  readonly url: string
  readonly json: boolean
  readonly headers: [string, string][]
  readonly lastEventId: string
  readonly maxEvents: number | undefined
  readonly maxAttempts: number | null
  readonly method: string
  readonly body: string | undefined
  readonly reconnect: boolean
}

function positiveInteger(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const value = Number(text)
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(value) || value < 1) {
    throw new UsageError(`${flag} expects a positive integer, got ${JSON.stringify(text)}`)
  }
  return value
}

/** One line: messages may carry a server's text. */
const oneLine = (text: string): string => text.replace(/\s*[\r\n]+\s*/g, ' ')

function parse(argv: string[]): ListenArgs | 'help' {
  let parsed
  try {
    parsed = parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (error) {
    // parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes: bad usage, one line.
    throw new UsageError(`listen: ${error instanceof Error ? error.message : String(error)}`)
  }
  const { values, positionals } = parsed
  if (values.help === true) return 'help'
  if (positionals.length !== 1) {
    throw new UsageError(
      `listen expects one URL, got ${positionals.length === 0 ? 'none' : positionals.length}; see 'ssehub listen --help'`,
    )
  }
  const url = positionals[0]!
  let protocol: string
  try {
    protocol = new URL(url).protocol
  } catch {
    throw new UsageError(`listen: ${JSON.stringify(url)} is not a URL; use http://host/path`)
  }
  if (protocol !== 'http:' && protocol !== 'https:') {
    throw new UsageError(`listen: the URL must be http: or https:, got ${JSON.stringify(url)}`)
  }
  const maxEvents = positiveInteger('--max-events', values['max-events'])
  const maxAttempts = positiveInteger('--max-attempts', values['max-attempts']) ?? null
  if (maxAttempts !== null && values['no-reconnect'] === true) {
    throw new UsageError('--max-attempts bounds reconnection: it cannot go with --no-reconnect')
  }
  const body = values.data
  const method = (values.method ?? (body === undefined ? 'GET' : 'POST')).toUpperCase()
  if (!token.test(method)) {
    throw new UsageError(`--method expects an HTTP method, got ${JSON.stringify(values.method)}`)
  }
  if (body !== undefined && (method === 'GET' || method === 'HEAD')) {
    throw new UsageError(`--data cannot be sent with --method ${method}; use --method POST`)
  }
  const lastEventId = values['last-event-id'] ?? ''
  if (/[\r\n\0]/.test(lastEventId)) {
    throw new UsageError('--last-event-id must not contain CR, LF or NUL')
  }
  return {
    url,
    json: values.json === true,
    headers: (values.header ?? []).map(parseHeader),
    lastEventId,
    maxEvents,
    maxAttempts,
    method,
    body,
    reconnect: values['no-reconnect'] !== true,
  }
}

/**
 * Runs `ssehub listen` with `argv` (the arguments after `listen`) and resolves with the exit
 * code: 0 on `204`, after `--max-events`, at the end of the stream with `--no-reconnect`, or when
 * `io.signal` aborts (SIGINT/SIGTERM: a stop asked for is not an error); 1 with one line on stderr
 * on a status other than 200, a wrong Content-Type, a failed connection with `--no-reconnect`, or
 * `--max-attempts` failed reconnections. While it reconnects, each failed attempt is one line on
 * stderr: its cause and the delay before the next attempt.
 *
 * @throws {UsageError} for bad flags (the caller prints it as one line and exits 2).
 */
export async function runListen(argv: string[], io: CliIo): Promise<number> {
  const args = parse(argv)
  if (args === 'help') {
    io.stdout(listenHelp)
    return 0
  }
  return new Promise<number>((resolve) => {
    let received = 0
    let connection: ReturnType<typeof connect>
    try {
      connection = connect(
        {
          url: args.url,
          method: args.method,
          headers: args.headers,
          body: args.body ?? null,
          lastEventId: args.lastEventId,
          reconnect: args.reconnect ? { maxAttempts: args.maxAttempts } : false,
          signal: io.signal,
        },
        {
          onEvent(event) {
            io.stdout(formatEvent(event, args.json))
            received++
            if (args.maxEvents !== undefined && received >= args.maxEvents) connection.close()
          },
          onReconnecting({ attempt, delayMs, error }) {
            // A clean end of the stream is the spec's normal reconnection: nothing to report.
            if (error === undefined) return
            const of = args.maxAttempts === null ? '' : ` of ${args.maxAttempts}`
            io.stderr(
              `ssehub listen: ${oneLine(error.message)}; retry ${attempt}${of} in ${delayMs} ms\n`,
            )
          },
          onClosed: () => resolve(0),
          onFailure(error) {
            io.stderr(`ssehub listen: ${oneLine(failureText(error, args.maxAttempts))}\n`)
            resolve(1)
          },
        },
      )
    } catch (error) {
      // A request fetch would refuse on every attempt (a URL with user:password@, a forbidden
      // method): bad usage, told at once.
      if (error instanceof TypeError || error instanceof RangeError) {
        throw new UsageError(`listen: ${error.message}`)
      }
      throw error
    }
  })
}

function failureText(error: Error, maxAttempts: number | null): string {
  // With reconnection on, a connection failure reaches onFailure only once --max-attempts is
  // spent: say so in the CLI's terms, with the last attempt's cause.
  if (maxAttempts !== null && isSseError(error) && error.code === ErrorCodes.CONNECTION_FAILED) {
    const cause = error.cause instanceof Error ? `: ${error.cause.message}` : ''
    return `gave up after ${maxAttempts} reconnection attempt${maxAttempts === 1 ? '' : 's'} (--max-attempts ${maxAttempts})${cause}`
  }
  return error.message
}
