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
  /** The `fetch` to use (called as a plain function). @default globalThis.fetch */
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
  /**
   * Why: a `ResponseError` (a status other than 200, or a wrong Content-Type: the connection is
   * CLOSED), an `SseError` `ERR_SSE_CONNECTION_FAILED` (a network error: the source reconnects),
   * or `undefined` (the server ended the stream, or answered 204).
   */
  readonly error: Error | undefined
  /** The error's message, as `ErrorEvent` has. */
  readonly message: string

  constructor(error: Error | undefined) {
    super('error')
    this.error = error
    this.message = error?.message ?? ''
  }
}

/**
 * The events an {@link EventSource} dispatches, by type: lib.dom's `EventSourceEventMap`, with the
 * `error` event's reason typed. Events of other types (`event: name` on the wire) are
 * `MessageEvent`s too.
 */
export interface EventSourceEventMap {
  error: EventSourceErrorEvent
  message: MessageEvent
  open: Event
}

// The listener and options types are spelled out (lib.dom's `EventListenerOrEventListenerObject`
// and `AddEventListenerOptions`): Node's types without the DOM lib do not declare them globally.

/** A listener: a function or an object with `handleEvent`. */
export type EventSourceListener = ((event: Event) => void) | { handleEvent(event: Event): void }

/** `addEventListener`'s options (lib.dom's `AddEventListenerOptions`). */
export interface EventSourceListenerOptions {
  capture?: boolean
  once?: boolean
  passive?: boolean
  signal?: AbortSignal
}

/** What an instance keeps out of its public shape (kept in a WeakMap: see {@link EventSource}). */
interface Internals {
  readyState: number
  origin: string
  engine: Engine | undefined
  onopen: ((this: EventSource, ev: Event) => unknown) | null
  onmessage: ((this: EventSource, ev: MessageEvent) => unknown) | null
  onerror: ((this: EventSource, ev: Event) => unknown) | null
}

// Private state lives here rather than in `#fields`: a class with private members is nominal in
// TypeScript, and then the browser's `EventSource` and ours could not be used in place of each
// other. With only public members, the two types are assignable both ways.
const internals = new WeakMap<EventSource, Internals>()

function state(source: EventSource): Internals {
  const found = internals.get(source)
  if (found === undefined) throw new TypeError('Illegal invocation: not an EventSource')
  return found
}

/**
 * An `EventSource` that behaves as the browser's: readyState `CONNECTING` -> `OPEN`, an `error`
 * event and back to `CONNECTING` on a network error or the end of the stream (it reconnects with
 * `Last-Event-ID`), an `error` event and `CLOSED` when the response is not a `200` with
 * `text/event-stream` (a `204` included): the spec's "fail the connection". Typed as lib.dom's
 * `EventSource`: an instance can be passed where the DOM type is expected, and back.
 *
 * @example
 * ```ts
 * const source = new EventSource('https://example.com/stream')
 * source.onmessage = (event) => console.log(event.data)
 * source.addEventListener('update', (event) => console.log(event.data, event.lastEventId))
 * ```
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#the-eventsource-interface
 */
export class EventSource extends EventTarget {
  /** The connection is not open yet, or is being re-established. */
  static readonly CONNECTING = 0 as const
  /** The connection is open and dispatching events. */
  static readonly OPEN = 1 as const
  /** The connection is closed and will not reconnect. */
  static readonly CLOSED = 2 as const
  /** {@inheritDoc EventSource.CONNECTING} */
  readonly CONNECTING = 0 as const
  /** {@inheritDoc EventSource.OPEN} */
  readonly OPEN = 1 as const
  /** {@inheritDoc EventSource.CLOSED} */
  readonly CLOSED = 2 as const

  /** The resolved URL of the stream. */
  readonly url: string
  /** Whether cookies are sent cross-origin. */
  readonly withCredentials: boolean

  /**
   * @throws {DOMException} `SyntaxError` when `url` cannot be parsed, as browsers do.
   * @throws {TypeError} when fetch would refuse the URL on every attempt (it has credentials).
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
    const self: Internals = {
      readyState: 0,
      origin: '',
      engine: undefined,
      onopen: null,
      onmessage: null,
      onerror: null,
    }
    internals.set(this, self)
    // The handler attributes are listeners registered first, as in browsers.
    super.addEventListener('open', (event) => self.onopen?.call(this, event))
    super.addEventListener('message', (event) => self.onmessage?.call(this, event as MessageEvent))
    super.addEventListener('error', (event) => self.onerror?.call(this, event))
    self.engine = new Engine(
      {
        url: resolved,
        credentials: this.withCredentials ? 'include' : 'same-origin',
        ...(init.fetch === undefined ? {} : { fetch: init.fetch }),
        reconnect: { retryMs: init.retryMs ?? 3000 },
      },
      {
        onOpen: (response) => {
          self.origin = new URL(response.url === '' ? resolved : response.url).origin
          self.readyState = 1
          this.dispatchEvent(new Event('open'))
        },
        onEvent: (event: ParsedEvent) => {
          this.dispatchEvent(
            new MessageEvent(event.type, {
              data: event.data,
              lastEventId: event.lastEventId,
              origin: self.origin,
            }),
          )
        },
        onReconnecting: (info) => {
          self.readyState = 0
          this.dispatchEvent(new EventSourceErrorEvent(info.error))
        },
        onClosed: (info) => {
          // close() is silent; a 204 "fails the connection": CLOSED and an error event.
          self.readyState = 2
          if (info.reason === 'no-content') this.dispatchEvent(new EventSourceErrorEvent(undefined))
        },
        onFailure: (error) => {
          self.readyState = 2
          this.dispatchEvent(new EventSourceErrorEvent(error))
        },
      },
    ).start()
  }

  /** `CONNECTING` (0), `OPEN` (1) or `CLOSED` (2). A `number`, as lib.dom types it. */
  get readyState(): number {
    return state(this).readyState
  }

  /** Called on `open`. */
  get onopen(): ((this: EventSource, ev: Event) => unknown) | null {
    return state(this).onopen
  }
  set onopen(handler: ((this: EventSource, ev: Event) => unknown) | null) {
    state(this).onopen = typeof handler === 'function' ? handler : null
  }

  /** Called on events of type `message` (other types need `addEventListener`). */
  get onmessage(): ((this: EventSource, ev: MessageEvent) => unknown) | null {
    return state(this).onmessage
  }
  set onmessage(handler: ((this: EventSource, ev: MessageEvent) => unknown) | null) {
    state(this).onmessage = typeof handler === 'function' ? handler : null
  }

  /**
   * Called on `error`: a reconnection (readyState `CONNECTING`) or the end (`CLOSED`). Typed
   * `Event` as in lib.dom; the event is an {@link EventSourceErrorEvent} (its `error` says why),
   * which `addEventListener('error', ...)` types as such.
   */
  get onerror(): ((this: EventSource, ev: Event) => unknown) | null {
    return state(this).onerror
  }
  set onerror(handler: ((this: EventSource, ev: Event) => unknown) | null) {
    state(this).onerror = typeof handler === 'function' ? handler : null
  }

  /** Closes the connection for good; no event follows. */
  close(): void {
    const self = state(this)
    self.readyState = 2
    self.engine?.close()
  }

  // lib.dom's overloads: a known type gets its event type; any other type a MessageEvent.
  override addEventListener<K extends keyof EventSourceEventMap>(
    type: K,
    listener: (this: EventSource, ev: EventSourceEventMap[K]) => unknown,
    options?: boolean | EventSourceListenerOptions,
  ): void
  override addEventListener(
    type: string,
    listener: (this: EventSource, event: MessageEvent) => unknown,
    options?: boolean | EventSourceListenerOptions,
  ): void
  override addEventListener(
    type: string,
    listener: EventSourceListener | null,
    options?: boolean | EventSourceListenerOptions,
  ): void
  override addEventListener(
    type: string,
    // `never`: whatever event type an overload's listener takes.
    listener: EventSourceListener | ((this: EventSource, event: never) => unknown) | null,
    options?: boolean | EventSourceListenerOptions,
  ): void {
    // null is a no-op, as in browsers (Node's types do not take it).
    if (listener !== null) super.addEventListener(type, listener as EventSourceListener, options)
  }

  override removeEventListener<K extends keyof EventSourceEventMap>(
    type: K,
    listener: (this: EventSource, ev: EventSourceEventMap[K]) => unknown,
    options?: boolean | { capture?: boolean },
  ): void
  override removeEventListener(
    type: string,
    listener: (this: EventSource, event: MessageEvent) => unknown,
    options?: boolean | { capture?: boolean },
  ): void
  override removeEventListener(
    type: string,
    listener: EventSourceListener | null,
    options?: boolean | { capture?: boolean },
  ): void
  override removeEventListener(
    type: string,
    // `never`: whatever event type an overload's listener takes.
    listener: EventSourceListener | ((this: EventSource, event: never) => unknown) | null,
    options?: boolean | { capture?: boolean },
  ): void {
    // null is a no-op, as in browsers (Node's types do not take it).
    if (listener !== null) super.removeEventListener(type, listener as EventSourceListener, options)
  }
}
