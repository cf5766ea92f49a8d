/**
 * The SSE encoder: event -> bytes. Pure (no Node imports besides the global Buffer-free
 * TextEncoder), so it runs in browsers and edge runtimes too.
 *
 * Injection guard: `data` is split on every line terminator the spec knows (CRLF, LF, CR) and each
 * piece gets its own `data:` line, so data can never end a field early. `event` and `id` are single
 * line fields: a CR or LF in them (or a NUL in `id`, which makes browsers ignore the id) is rejected
 * with a {@link WireFieldError} rather than silently rewritten.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 */

/** One event as it travels on the wire. */
export interface SseEvent {
  /** The `id:` field: sets the client's last event id. */
  id?: string
  /** The `event:` field: the event type (default `message` on the client). */
  event?: string
  /** The `data:` payload; multi-line strings become several `data:` lines. */
  data?: string
  /** The `retry:` field, in milliseconds: the client's reconnection delay. */
  retry?: number
}

/** Thrown when a field would break the wire format. `field` names which one. */
export class WireFieldError extends Error {
  /** Stable code, the same as the hub's `ERR_SSE_INVALID_FIELD`. */
  readonly code = 'ERR_SSE_INVALID_FIELD'
  constructor(
    /** The offending field: `id`, `event` or `retry`. */
    readonly field: 'id' | 'event' | 'retry',
    message: string,
  ) {
    super(message)
    this.name = 'WireFieldError'
  }
}

const lineBreak = /\r\n|\r|\n/
const hasLineBreak = /[\r\n]/
const hasLineBreakOrNul = /[\r\n\0]/

/** Throws {@link WireFieldError} unless `value` is usable as an `event:` field. */
export function assertEventName(value: string): void {
  if (hasLineBreak.test(value)) {
    throw new WireFieldError(
      'event',
      `The event name must not contain CR or LF (got ${JSON.stringify(value)}); use a single-line name such as "progress".`,
    )
  }
}

/** Throws {@link WireFieldError} unless `value` is usable as an `id:` field. */
export function assertEventId(value: string): void {
  if (hasLineBreakOrNul.test(value)) {
    throw new WireFieldError(
      'id',
      `The event id must not contain CR, LF or NUL (got ${JSON.stringify(value)}); browsers would drop or split it.`,
    )
  }
}

/** Throws {@link WireFieldError} unless `value` is a valid `retry:` value (a non-negative integer). */
export function assertRetry(value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new WireFieldError(
      'retry',
      `retry must be a non-negative integer number of milliseconds, got ${String(value)}.`,
    )
  }
}

/**
 * Encodes the `data:` lines of `data` (each terminated by LF). An empty string still yields one
 * `data:` line, so that an event with empty data is dispatched by clients.
 */
export function encodeDataLines(data: string): string {
  // Fast path: the common single-line payload needs no split.
  if (!hasLineBreak.test(data)) return `data: ${data}\n`
  let out = ''
  for (const line of data.split(lineBreak)) out += `data: ${line}\n`
  return out
}

/**
 * Encodes `event` into the text of one SSE frame, ending with the blank line that dispatches it.
 * Field order: `event`, `id`, `retry`, `data` (ids first is what most servers send; order does not
 * matter to parsers). An event with neither data nor any other field encodes to `""`.
 *
 * @throws {WireFieldError} when `event` or `id` contain a line break, or `id` a NUL.
 */
export function encodeEventText(event: SseEvent): string {
  let out = ''
  if (event.event !== undefined) {
    assertEventName(event.event)
    out += `event: ${event.event}\n`
  }
  if (event.id !== undefined) {
    assertEventId(event.id)
    out += `id: ${event.id}\n`
  }
  if (event.retry !== undefined) {
    assertRetry(event.retry)
    out += `retry: ${event.retry}\n`
  }
  if (event.data !== undefined) out += encodeDataLines(event.data)
  return out === '' ? '' : out + '\n'
}

const encoder = new TextEncoder()

/** {@link encodeEventText} as UTF-8 bytes. */
export function encodeEvent(event: SseEvent): Uint8Array {
  return encoder.encode(encodeEventText(event))
}

/**
 * Encodes a comment frame (`: text`). Comments are ignored by clients; they keep proxies from
 * closing idle streams. A multi-line text becomes several comment lines, never a field.
 */
export function encodeCommentText(text = ''): string {
  if (text === '') return ':\n\n'
  let out = ''
  for (const line of text.split(lineBreak)) out += `: ${line}\n`
  return out + '\n'
}
