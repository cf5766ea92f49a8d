/**
 * Following a relayed generation (an LLM answer published by `relay()` onto a finite topic): the
 * whole text so far, then each new token, whenever the viewer joins, and across drops. It reads
 * the topic `from=start` — every token the history holds — and the client reconnects with
 * `Last-Event-ID` (which the hub prefers over `from`), so no token is lost or repeated.
 */
import { ErrorCodes, SseError } from '../errors.js'
import { events, type EventsOptions } from './events.js'

/** One step of a followed generation. */
export interface RelayChunk {
  /** The token just received. */
  readonly delta: string
  /** The text so far, this token included. */
  readonly text: string
}

/** How a generation ended, as its final event says. */
export interface RelayEnd {
  /** `done`, or why it stopped: `error`, `timeout`, `aborted`. */
  readonly outcome: string
  /** Tokens the relay published. */
  readonly tokens: number
  /** The text received. */
  readonly text: string
}

/** Options of {@link followRelay}: the client's, but the URL is made from the hub and topic. */
export interface FollowRelayOptions extends Omit<EventsOptions, 'url'> {
  /** The hub server's base URL, e.g. `http://localhost:8080`. */
  readonly hub: string | URL
  /** The relay's topic (e.g. `relay/<id>`). */
  readonly topic: string
  /**
   * The name of the token events.
   * @default 'token'
   */
  readonly tokenEvent?: string
}

/** The generation ended with `error`, `timeout` or `aborted`; what was received is kept. */
export class RelayEndedError extends SseError {
  /** How it ended, and the text received. */
  readonly end: RelayEnd

  constructor(message: string, end: RelayEnd) {
    super(ErrorCodes.UPSTREAM, message)
    this.name = 'RelayEndedError'
    this.end = end
  }
}

/**
 * Yields the relayed text of `options.topic` token by token (`{ delta, text }`), from the first
 * token the history holds, then live; returns how it ended once the final `done` event arrives.
 * @throws {RelayEndedError} when the final event is `error` (an upstream failure, the timeout or
 * an abort), after yielding every token before it.
 *
 * @example
 * ```ts
 * for await (const { delta } of followRelay({ hub: 'http://localhost:8080', topic: 'relay/42' }))
 *   process.stdout.write(delta)
 * ```
 */
export async function* followRelay(
  options: FollowRelayOptions,
): AsyncGenerator<RelayChunk, RelayEnd, undefined> {
  const { hub, topic, tokenEvent = 'token', ...rest } = options
  const url = new URL('/events', hub)
  url.searchParams.set('topic', topic)
  url.searchParams.set('from', 'start')
  const stream = events({ ...rest, url: url.href })
  let text = ''
  try {
    for await (const event of stream) {
      if (event.type === tokenEvent) {
        text += event.data
        yield { delta: event.data, text }
        continue
      }
      if (event.type !== 'done' && event.type !== 'error') continue
      const final = parseFinal(event.data)
      const end: RelayEnd = { outcome: final.outcome, tokens: final.tokens, text }
      if (event.type === 'done') return end
      throw new RelayEndedError(
        `The generation ended with ${final.outcome}${final.message === undefined ? '' : `: ${final.message}`}`,
        end,
      )
    }
  } finally {
    stream.close()
  }
  // The stream ended without a final event (closed by the caller, or a 204 on a resume after it).
  return { outcome: 'unknown', tokens: 0, text }
}

function parseFinal(data: string): { outcome: string; tokens: number; message?: string } {
  try {
    const value = JSON.parse(data) as { outcome?: unknown; tokens?: unknown; message?: unknown }
    return {
      outcome: typeof value.outcome === 'string' ? value.outcome : 'unknown',
      tokens: typeof value.tokens === 'number' ? value.tokens : 0,
      ...(typeof value.message === 'string' ? { message: value.message } : {}),
    }
  } catch {
    return { outcome: 'unknown', tokens: 0, message: data.slice(0, 200) }
  }
}
