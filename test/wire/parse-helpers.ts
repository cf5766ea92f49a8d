import { createParser, type ParsedEvent, type ParserOptions } from '../../src/wire/parse.js'
import type { SseError } from '../../src/errors.js'

/** Everything a parser reported, in order. */
export interface Parsed {
  events: ParsedEvent[]
  retries: number[]
  comments: string[]
  errors: SseError[]
  /** `parser.lastEventId` after the last chunk. */
  lastEventId: string
}

/** Feeds `chunks` to one new parser and collects what it reports. */
export function parseChunks(
  chunks: Iterable<string | Uint8Array>,
  options: Omit<ParserOptions, 'onEvent' | 'onRetry' | 'onComment' | 'onError'> = {},
): Parsed {
  const out: Parsed = { events: [], retries: [], comments: [], errors: [], lastEventId: '' }
  const parser = createParser({
    ...options,
    onEvent: (event) => out.events.push(event),
    onRetry: (ms) => out.retries.push(ms),
    onComment: (comment) => out.comments.push(comment),
    onError: (error) => out.errors.push(error),
  })
  for (const chunk of chunks) parser.feed(chunk)
  out.lastEventId = parser.lastEventId
  return out
}

const encoder = new TextEncoder()

/** The UTF-8 bytes of `text`, one `Uint8Array` per byte. */
export function bytewise(text: string): Uint8Array[] {
  return Array.from(encoder.encode(text), (byte) => Uint8Array.of(byte))
}

/** `text`, one string per UTF-16 code unit. */
export function charwise(text: string): string[] {
  return text.split('')
}

/** The UTF-8 bytes of `text` cut at the given (sorted or not) byte offsets. */
export function splitBytes(text: string, cuts: readonly number[]): Uint8Array[] {
  const bytes = encoder.encode(text)
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
  const chunks: Uint8Array[] = []
  let last = 0
  for (const point of points) {
    chunks.push(bytes.subarray(last, point))
    last = point
  }
  chunks.push(bytes.subarray(last))
  return chunks
}

/** `text` cut at the given UTF-16 offsets (may split a surrogate pair: still valid input). */
export function splitText(text: string, cuts: readonly number[]): string[] {
  const points = [...new Set(cuts.map((cut) => cut % (text.length + 1)))].sort((a, b) => a - b)
  const chunks: string[] = []
  let last = 0
  for (const point of points) {
    chunks.push(text.slice(last, point))
    last = point
  }
  chunks.push(text.slice(last))
  return chunks
}

/** Shorthand for an expected event. */
export function ev(data: string, type = 'message', lastEventId = ''): ParsedEvent {
  return { type, data, lastEventId }
}
