/**
 * The incremental SSE parser: bytes (or text) -> events, exactly per the WHATWG "event stream
 * interpretation" rules. Pure: no Node imports (the global `TextDecoder` only), so it runs in
 * browsers, workers and edge runtimes.
 *
 * How it stays O(n) over arbitrary chunk boundaries:
 * - bytes are decoded with one streaming `TextDecoder`, which carries a multibyte character split
 *   across chunks over to the next call;
 * - an incomplete line is kept by appending each piece to a string (a rope in every JS engine:
 *   O(1) per append, flattened once), and a chunk that completes it is parsed in place: the line's
 *   head is joined with its tail only, never with the whole chunk, so no character is copied more
 *   than twice, however the chunks fall;
 * - within a buffer, the next CR, LF and `:` positions are found with `indexOf` and cached until
 *   passed, so each search only moves forward: a constant number of scans per character, whatever
 *   the mix of line terminators (no rescan from the start of a buffer per line or per chunk);
 * - a CR ends its line at once (no waiting for the next chunk to see whether an LF follows): a flag
 *   drops an LF at the start of the next chunk, so CRLF split across chunks is still one line end.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
import { ErrorCodes, SseError } from '../errors.js'

/**
 * One dispatched event, shaped like the `MessageEvent` an `EventSource` fires.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#dispatchMessage
 */
export interface ParsedEvent {
  /** The event type: the last `event:` field of the event, or `message` when there was none. */
  type: string
  /** The `data:` lines joined with LF (the final LF dropped). */
  data: string
  /**
   * The last event id as of this event: set by the most recent `id:` field of the stream, which
   * persists across events until another `id:` field changes it (`id:` alone resets it to `""`).
   */
  lastEventId: string
}

/** Options of {@link createParser}. */
export interface ParserOptions {
  /** Called for every dispatched event, in stream order. */
  onEvent: (event: ParsedEvent) => void
  /**
   * Called with the new reconnection time in milliseconds for every `retry:` field whose value is
   * all ASCII digits (other values are ignored, as the spec requires).
   */
  onRetry?: (ms: number) => void
  /** Called with the text of every comment line (after the `:` and one optional space). */
  onComment?: (comment: string) => void
  /**
   * Called with an {@link SseError} (`ERR_SSE_LINE_TOO_LONG`) when a line or an event exceeds its
   * limit; the offending line or event is dropped and parsing goes on. Without `onError`, `feed()`
   * throws that error instead, after the rest of the chunk has been parsed.
   */
  onError?: (error: SseError) => void
  /**
   * The longest line kept in memory, in UTF-16 code units (one per character for text that is not
   * an emoji or other astral character; the byte count for ASCII). A longer line is dropped and
   * reported. `null` disables the limit (a hostile server can then exhaust memory).
   *
   * @default 8_388_608 (8 Mi)
   */
  maxLineChars?: number | null | undefined
  /**
   * The largest event data kept in memory, in UTF-16 code units, counting one LF per `data:` line.
   * A larger event is dropped (up to its blank line) and reported. `null` disables the limit.
   *
   * @default 16_777_216 (16 Mi)
   */
  maxEventChars?: number | null | undefined
  /**
   * The initial value of the last event id: the `Last-Event-ID` a client sent when it reconnected,
   * so that events without an `id:` field carry it on, as browsers do.
   *
   * @default ''
   */
  lastEventId?: string
}

/** Options of {@link Parser.reset}. */
export interface ParserResetOptions {
  /** The last event id to start the next stream with. @default '' */
  lastEventId?: string
}

/** An incremental parser made by {@link createParser}. */
export interface Parser {
  /**
   * Parses the next chunk of the stream: UTF-8 bytes (a `Uint8Array`, e.g. a Node `Buffer`) or
   * already decoded text. Events are dispatched synchronously from within the call. An exception
   * thrown by a callback propagates out of `feed()`; the unparsed rest of the chunk is kept and
   * parsed by the next call.
   */
  feed(chunk: Uint8Array | string): void
  /**
   * Starts a new stream: drops any incomplete line, event and partial character, and arms the
   * leading-BOM rule again. Call it before feeding the body of a new response (a reconnection).
   */
  reset(options?: ParserResetOptions): void
  /**
   * The stream's last event id as of the last blank line (the spec's "last event ID string"): what
   * a reconnecting client sends as `Last-Event-ID`. It changes at every blank line, even one that
   * dispatches nothing, and never mid-event: an event cut off by a dropped connection does not
   * count as received.
   */
  readonly lastEventId: string
}

const LF = 10
const CR = 13
const SPACE = 32
const COLON = 58
const BOM = 0xfeff

const defaultMaxLineChars = 8 * 1024 * 1024
const defaultMaxEventChars = 16 * 1024 * 1024
const decodeOptions = { stream: true } as const

function resolveLimit(name: string, value: number | null | undefined, fallback: number): number {
  if (value === undefined) return fallback
  if (value === null) return Infinity
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new RangeError(
      `Expected \`${name}\` to be a positive integer or null, got \`${String(value)}\` (${typeof value})`,
    )
  }
  return value
}

/** True when `value` is one or more ASCII digits (the spec's only valid `retry:` form). */
function isAsciiDigits(value: string): boolean {
  if (value.length === 0) return false
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i)
    if (c < 48 || c > 57) return false
  }
  return true
}

/**
 * Creates an incremental SSE parser. Feed it the response body chunk by chunk, however the chunks
 * fall (byte by byte, a multibyte character or a CRLF split across two chunks): the events are the
 * same as for the whole stream at once.
 *
 * @example
 * ```ts
 * const parser = createParser({ onEvent: (event) => console.log(event.type, event.data) })
 * for await (const chunk of response.body) parser.feed(chunk)
 * ```
 * @throws {TypeError} when `onEvent` is not a function.
 * @throws {RangeError} when a limit is not a positive integer or `null`.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */
export function createParser(options: ParserOptions): Parser {
  const onEventType = typeof (options as Partial<ParserOptions> | null | undefined)?.onEvent
  if (onEventType !== 'function') {
    throw new TypeError(`Expected \`options.onEvent\` to be a function, got \`${onEventType}\``)
  }
  const { onEvent, onRetry, onComment, onError } = options
  const maxLineChars = resolveLimit('maxLineChars', options.maxLineChars, defaultMaxLineChars)
  const maxEventChars = resolveLimit('maxEventChars', options.maxEventChars, defaultMaxEventChars)

  // Stream state. The decoder keeps a BOM as U+FEFF (`ignoreBOM`) so that byte and string input
  // share one rule below: drop one U+FEFF at the very start of the stream, and only there.
  let decoder: TextDecoder | undefined
  let atStreamStart = true
  let skipLeadingLF = false
  let pending = ''
  let discardingLine = false
  let discardingEvent = false
  let pendingError: SseError | undefined
  // Text received but not parsed yet because a callback threw: parsed first by the next feed().
  let backlog = ''

  // Event state: the spec's data, event type and last event ID buffers.
  let data = ''
  let hasData = false
  let dataChars = 0
  let eventType = ''
  let idBuffer = options.lastEventId ?? ''
  let lastEventId = idBuffer

  function report(message: string): void {
    const error = new SseError(ErrorCodes.LINE_TOO_LONG, message)
    if (onError !== undefined) onError(error)
    else pendingError ??= error
  }

  function lineTooLong(): void {
    report(
      `An SSE line is longer than maxLineChars (${maxLineChars} UTF-16 code units); it was dropped. Raise maxLineChars if the server legitimately sends lines this long.`,
    )
  }

  function appendData(value: string): void {
    dataChars += value.length + 1
    if (dataChars > maxEventChars) {
      data = ''
      hasData = false
      dataChars = 0
      eventType = ''
      discardingEvent = true
      report(
        `An SSE event has more data than maxEventChars (${maxEventChars} UTF-16 code units); it was dropped. Raise maxEventChars if the server legitimately sends events this large.`,
      )
      return
    }
    // `+` on strings builds a rope in every JS engine (O(1) per append, flattened once when the
    // event is read), so a many-line event costs O(total length), not O(lines * length).
    if (hasData) data = data + '\n' + value
    else {
      data = value
      hasData = true
    }
  }

  function dispatch(): void {
    // The spec sets the last event ID string before looking at the data buffer: an event with an
    // `id:` but no data still moves the id a reconnecting client sends.
    lastEventId = idBuffer
    if (discardingEvent) {
      discardingEvent = false
      return
    }
    if (!hasData) {
      eventType = ''
      return
    }
    const event: ParsedEvent = {
      type: eventType === '' ? 'message' : eventType,
      data,
      lastEventId: idBuffer,
    }
    data = ''
    hasData = false
    dataChars = 0
    eventType = ''
    onEvent(event)
  }

  function processField(field: string, value: string): void {
    switch (field) {
      case 'data':
        appendData(value)
        break
      case 'event':
        eventType = value
        break
      case 'id':
        // An id with NUL is ignored: browsers could not send it back in a header.
        if (value.indexOf('\0') === -1) idBuffer = value
        break
      case 'retry':
        if (isAsciiDigits(value)) onRetry?.(Number(value))
        break
      // Any other field is ignored, as the spec requires.
    }
  }

  // The next `:` at or after the line being parsed, cached per buffer so that lines without a
  // colon do not rescan the buffer: -1 when there is none left, -2 when not searched yet.
  let nextColon = -2

  /** Parses the line `buf[start, end)`; `buf[end]` is its terminator or past the end of `buf`. */
  function parseLine(buf: string, start: number, end: number): void {
    if (start === end) return dispatch()
    if (discardingEvent) return
    const first = buf.charCodeAt(start)
    // Fast paths for the fields that make up most streams, without the colon search.
    if (
      first === 100 &&
      buf.charCodeAt(start + 1) === 97 &&
      buf.charCodeAt(start + 2) === 116 &&
      buf.charCodeAt(start + 3) === 97 &&
      buf.charCodeAt(start + 4) === COLON
    ) {
      // `buf[end]` is never a space, so `valueStart <= end`.
      appendData(buf.slice(buf.charCodeAt(start + 5) === SPACE ? start + 6 : start + 5, end))
      return
    }
    if (
      first === 101 &&
      buf.charCodeAt(start + 1) === 118 &&
      buf.charCodeAt(start + 2) === 101 &&
      buf.charCodeAt(start + 3) === 110 &&
      buf.charCodeAt(start + 4) === 116 &&
      buf.charCodeAt(start + 5) === COLON
    ) {
      eventType = buf.slice(buf.charCodeAt(start + 6) === SPACE ? start + 7 : start + 6, end)
      return
    }
    if (first === 105 && buf.charCodeAt(start + 1) === 100 && buf.charCodeAt(start + 2) === COLON) {
      const valueStart = buf.charCodeAt(start + 3) === SPACE ? start + 4 : start + 3
      // An id with NUL is ignored: browsers could not send it back in a header. (A charCode loop:
      // `indexOf('\0')` takes a slow path in V8, and ids are short.)
      for (let i = valueStart; i < end; i++) if (buf.charCodeAt(i) === 0) return
      idBuffer = buf.slice(valueStart, end)
      return
    }
    if (first === COLON) {
      if (onComment !== undefined) {
        onComment(buf.slice(buf.charCodeAt(start + 1) === SPACE ? start + 2 : start + 1, end))
      }
      return
    }
    if (nextColon !== -1 && nextColon < start) nextColon = buf.indexOf(':', start)
    if (nextColon === -1 || nextColon >= end) {
      // No colon: the whole line is the field name and the value is empty.
      processField(buf.slice(start, end), '')
      return
    }
    const valueStart = buf.charCodeAt(nextColon + 1) === SPACE ? nextColon + 2 : nextColon + 1
    processField(buf.slice(start, nextColon), buf.slice(valueStart, end))
  }

  /**
   * Parses the complete lines of `buf` from `pos` and keeps the incomplete last line (if any) as
   * `pending`. `nextCR` is `buf.indexOf('\r', p)` for some `p <= pos` (a caller that
   * already searched passes its result, so no chunk is scanned for CR twice).
   */
  function parseBuffer(buf: string, pos: number, nextCR: number): void {
    let nextLF = buf.indexOf('\n', pos)
    nextColon = -2
    let parsed = false
    try {
      for (;;) {
        if (nextLF !== -1 && nextLF < pos) nextLF = buf.indexOf('\n', pos)
        if (nextCR !== -1 && nextCR < pos) nextCR = buf.indexOf('\r', pos)
        let end: number
        let next: number
        if (nextCR === -1 || (nextLF !== -1 && nextLF < nextCR)) {
          if (nextLF === -1) break
          end = nextLF
          next = nextLF + 1
        } else {
          end = nextCR
          next = nextCR + 1
          if (next === buf.length) skipLeadingLF = true
          else if (buf.charCodeAt(next) === LF) next++
        }
        const start = pos
        // Advance before parsing: should a callback throw, this line counts as consumed.
        pos = next
        if (start === end) dispatch()
        else if (end - start > maxLineChars) lineTooLong()
        else if (
          // The commonest line, `data:`, inline (no call), and when it is a whole event's only
          // line (`data: x` then a blank line), dispatched at once without touching the buffers.
          buf.charCodeAt(start) === 100 &&
          buf.charCodeAt(start + 1) === 97 &&
          buf.charCodeAt(start + 2) === 116 &&
          buf.charCodeAt(start + 3) === 97 &&
          buf.charCodeAt(start + 4) === COLON &&
          !discardingEvent
        ) {
          const value = buf.slice(buf.charCodeAt(start + 5) === SPACE ? start + 6 : start + 5, end)
          if (
            !hasData &&
            next === end + 1 &&
            buf.charCodeAt(next) === LF &&
            value.length < maxEventChars
          ) {
            pos = next + 1
            lastEventId = idBuffer
            const type = eventType === '' ? 'message' : eventType
            eventType = ''
            onEvent({ type, data: value, lastEventId: idBuffer })
          } else appendData(value)
        } else parseLine(buf, start, end)
      }
      parsed = true
    } finally {
      // A callback threw: keep what is left for the next feed() rather than losing it.
      if (!parsed && pos < buf.length) backlog = buf.slice(pos)
    }
    const rest = buf.length - pos
    if (rest > maxLineChars) {
      lineTooLong()
      discardingLine = true
    } else if (rest > 0) {
      pending = pos === 0 ? buf : buf.slice(pos)
    }
  }

  function feedText(input: string): void {
    if (input.length === 1 && pending !== '' && backlog === '' && !skipLeadingLF) {
      // A producer that flushes every byte (or a test doing so) mid-line: append, search nothing.
      const c = input.charCodeAt(0)
      if (c !== LF && c !== CR && !discardingLine && pending.length < maxLineChars) {
        pending += input
        return
      }
    }
    let text = input
    let pos = 0
    if (backlog !== '') {
      // Already past the BOM and CRLF checks: a backlog only exists mid-stream and mid-buffer.
      text = backlog + input
      backlog = ''
    } else {
      if (atStreamStart) {
        atStreamStart = false
        if (text.charCodeAt(0) === BOM) pos = 1
      }
      if (skipLeadingLF) {
        skipLeadingLF = false
        if (text.charCodeAt(pos) === LF) pos++
      }
    }
    if (pos === text.length) return
    if (discardingLine) {
      // Skip the rest of an over-long line up to its terminator.
      const lf = text.indexOf('\n', pos)
      const cr = text.indexOf('\r', pos)
      const end = cr === -1 || (lf !== -1 && lf < cr) ? lf : cr
      if (end === -1) return
      discardingLine = false
      pos = end + 1
      if (end === cr) {
        if (pos === text.length) skipLeadingLF = true
        else if (text.charCodeAt(pos) === LF) pos++
      }
      if (pos === text.length) return
    }
    const cr = text.indexOf('\r', pos)
    if (pending === '') return parseBuffer(text, pos, cr)
    const lf = text.indexOf('\n', pos)
    if (lf === -1 && cr === -1) {
      // Still inside the same line: keep the piece, copy nothing.
      if (pending.length + text.length - pos > maxLineChars) {
        pending = ''
        discardingLine = true
        lineTooLong()
      } else pending += pos === 0 ? text : text.slice(pos)
      return
    }
    // Complete the pending line with the head of this text and parse it on its own, then parse the
    // text in place: a large chunk is never copied into a joined buffer.
    const end = cr === -1 || (lf !== -1 && lf < cr) ? lf : cr
    let next = end + 1
    if (end === cr) {
      if (next === text.length) skipLeadingLF = true
      else if (text.charCodeAt(next) === LF) next++
    }
    const line = pending + text.slice(pos, end)
    pending = ''
    let parsed = false
    try {
      nextColon = -2
      if (line.length > maxLineChars) lineTooLong()
      else parseLine(line, 0, line.length)
      parsed = true
    } finally {
      if (!parsed && next < text.length) backlog = text.slice(next)
    }
    if (next < text.length) parseBuffer(text, next, cr)
  }

  function feed(chunk: Uint8Array | string): void {
    let text: string
    if (typeof chunk === 'string') text = chunk
    else {
      decoder ??= new TextDecoder('utf-8', { ignoreBOM: true })
      text = decoder.decode(chunk, decodeOptions)
    }
    // An empty piece (e.g. the first byte of a multibyte character) changes nothing, not even
    // the BOM rule: the BOM is the first character of the stream, not of the first call.
    if (text.length !== 0 || backlog !== '') feedText(text)
    if (pendingError !== undefined) {
      const error = pendingError
      pendingError = undefined
      throw error
    }
  }

  function reset(resetOptions: ParserResetOptions = {}): void {
    decoder = undefined
    atStreamStart = true
    skipLeadingLF = false
    pending = ''
    discardingLine = false
    discardingEvent = false
    pendingError = undefined
    backlog = ''
    data = ''
    hasData = false
    dataChars = 0
    eventType = ''
    idBuffer = resetOptions.lastEventId ?? ''
    lastEventId = idBuffer
  }

  return {
    feed,
    reset,
    get lastEventId() {
      return lastEventId
    },
  }
}
