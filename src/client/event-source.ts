/**
 * A drop-in `EventSource`: the browser API on the ssehub client engine, for Node and any runtime
 * with `fetch` and `EventTarget`.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#the-eventsource-interface
 */
import type { ParsedEvent } from '../wire/parse.js'
import { Engine, type FetchLike } from './client.js'

/** `EventSourceInit` plus what a fetch-based client can add. */
export interface EventSourceOptions {
  /** Send cookies cross-origin (the request's credentials mode `include`). @default false */
  withCredentials?: boolean
  /** The `fetch` to use. @default globalThis.fetch */
  fetch?: FetchLike
  /**
   * The reconnection time before the server sets one with `retry:`. Browsers use a few seconds.
   *
   * @default 3000
   */
  retryMs?: number
}

/** The `error` event: a plain `Event` with the reason attached (browsers give none). */
export class EventSourceErrorEvent extends Event {
  /** Why: a `ResponseError` (bad status or type, the connection is CLOSED) or a network error. */
  readonly error: Error | undefined
  /** The error's message, as `ErrorEvent` has. */
  readonly message: string

  constructor(error: Error | undefined) {
    super('error')
    this.error = error
    this.message = error?.message ?? ''
  }
}

type Handler<E extends Event> = ((this: EventSource, event: E) => unknown) | null

/**
 * An `EventSource` that behaves as the browser's: readyState `CONNECTING` -> `OPEN`, an `error`
 * event and back to `CONNECTING` on a network error or the end of the stream (it reconnects with
 * `Last-Event-ID`), an `error` event and `CLOSED` when the response is not a `200` with
 * `text/event-stream` (a `204` included): the spec's "fail the connection".
 *
 * @example
 * ```ts
 * const source = new EventSource('https://example.com/stream')
 * source.addEventListener('update', (event) => console.log((event as MessageEvent).data))
 * ```
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#the-eventsource-interface
 */
export class EventSource extends EventTarget {
  /** The connection is not open yet, or is being re-established. */
  static readonly CONNECTING = 0
  /** The connection is open and dispatching events. */
  static readonly OPEN = 1
  /** The connection is closed and will not reconnect. */
  static readonly CLOSED = 2
  /** {@inheritDoc EventSource.CONNECTING} */
  readonly CONNECTING = 0
  /** {@inheritDoc EventSource.OPEN} */
  readonly OPEN = 1
  /** {@inheritDoc EventSource.CLOSED} */
  readonly CLOSED = 2

  /** The resolved URL of the stream. */
  readonly url: string
  /** Whether cookies are sent cross-origin. */
  readonly withCredentials: boolean
  #readyState: 0 | 1 | 2 = 0
  #origin = ''
  readonly #engine: Engine
  #onopen: Handler<Event> = null
  #onmessage: Handler<MessageEvent> = null
  #onerror: Handler<EventSourceErrorEvent> = null

  /**
   * @throws {DOMException} `SyntaxError` when `url` cannot be parsed, as browsers do.
   */
  constructor(url: string | URL, init: EventSourceOptions = {}) {
    super()
    const base = (globalThis as { location?: { href?: string } }).location?.href
    let resolved: string
    try {
      resolved = new URL(url, base).href
    } catch {
      throw new DOMException(`Invalid URL: ${String(url)}`, 'SyntaxError')
    }
    this.url = resolved
    this.withCredentials = init.withCredentials === true
    // The handler attributes are listeners registered first, as in browsers.
    this.addEventListener('open', (event) => this.#onopen?.call(this, event))
    this.addEventListener('message', (event) => this.#onmessage?.call(this, event as MessageEvent))
    this.addEventListener('error', (event) =>
      this.#onerror?.call(this, event as EventSourceErrorEvent),
    )
    this.#engine = new Engine(
      {
        url: resolved,
        credentials: this.withCredentials ? 'include' : 'same-origin',
        ...(init.fetch === undefined ? {} : { fetch: init.fetch }),
        reconnect: { retryMs: init.retryMs ?? 3000 },
      },
      {
        onOpen: (response) => {
          this.#origin = new URL(response.url === '' ? resolved : response.url).origin
          this.#readyState = 1
          this.dispatchEvent(new Event('open'))
        },
        onEvent: (event) => this.#dispatchMessage(event),
        onReconnecting: (info) => {
          this.#readyState = 0
          this.dispatchEvent(new EventSourceErrorEvent(info.error))
        },
        onClosed: (info) => {
          // close() is silent; a 204 "fails the connection": CLOSED and an error event.
          this.#readyState = 2
          if (info.reason === 'no-content') this.dispatchEvent(new EventSourceErrorEvent(undefined))
        },
        onFailure: (error) => {
          this.#readyState = 2
          this.dispatchEvent(new EventSourceErrorEvent(error))
        },
      },
      { strictStatus: true },
    ).start()
  }

  /** `CONNECTING` (0), `OPEN` (1) or `CLOSED` (2). */
  get readyState(): 0 | 1 | 2 {
    return this.#readyState
  }

  /** Called on `open`. */
  get onopen(): Handler<Event> {
    return this.#onopen
  }
  set onopen(handler: Handler<Event>) {
    this.#onopen = handler
  }

  /** Called on events of type `message` (other types need `addEventListener`). */
  get onmessage(): Handler<MessageEvent> {
    return this.#onmessage
  }
  set onmessage(handler: Handler<MessageEvent>) {
    this.#onmessage = handler
  }

  /** Called on `error`: a reconnection (readyState `CONNECTING`) or the end (`CLOSED`). */
  get onerror(): Handler<EventSourceErrorEvent> {
    return this.#onerror
  }
  set onerror(handler: Handler<EventSourceErrorEvent>) {
    this.#onerror = handler
  }

  /** Closes the connection for good; no event follows. */
  close(): void {
    this.#readyState = 2
    this.#engine.close()
  }

  #dispatchMessage(event: ParsedEvent): void {
    this.dispatchEvent(
      new MessageEvent(event.type, {
        data: event.data,
        lastEventId: event.lastEventId,
        origin: this.#origin,
      }),
    )
  }
}
