/**
 * The async-iterator shell over the client engine: `for await (const event of events({url}))`.
 */
import type { ParsedEvent } from '../wire/parse.js'
import { Engine, type ClientOptions, type ConnectionState, type ReconnectInfo } from './client.js'

/** Options of {@link events}: the client's, plus the consumer buffer's bound. */
export interface EventsOptions extends ClientOptions {
  /**
   * Called before each reconnection, with the cause of a failed attempt in `error` (e.g.
   * `Connection to https://example.com/stream failed: fetch failed (connect ECONNREFUSED ...)`)
   * and the delay before the next one: the loop itself sees only events, so this is where a
   * failing connection becomes visible. An exception thrown here ends the loop with it.
   * `maxAttempts` bounds the attempts; then the loop throws `ERR_SSE_CONNECTION_FAILED`.
   */
  onReconnecting?: (info: ReconnectInfo) => void
  /**
   * How many events may wait for the consumer. At this mark the client stops reading the
   * response (TCP backpressure reaches the server) until the loop catches up. One network chunk
   * is parsed at a time, so the buffer may pass the mark by the events of one chunk.
   *
   * @default 100
   */
  maxBufferedEvents?: number
}

/** A stream of events made by {@link events}: an async iterator with a `close()`. */
export interface EventStream extends AsyncIterable<ParsedEvent> {
  /**
   * The next event. Ends (`done`) when the stream closes: `close()`, `break`, abort, a `204`, or
   * the server's end with reconnection off. Rejects once with the failure (a `ResponseError`, an
   * `SseError`), after the events received before it, then ends.
   */
  next(): Promise<IteratorResult<ParsedEvent, undefined>>
  /** Closes the stream (what `break` in a `for await` loop calls). */
  return(): Promise<IteratorResult<ParsedEvent, undefined>>
  /** Closes the stream; buffered events are dropped and pending `next()` calls end. */
  close(): void
  /** The connection state. */
  readonly state: ConnectionState
  /**
   * The last event id of the events taken from the iterator so far (not of events still waiting
   * in the buffer): where to resume from without missing any.
   */
  readonly lastEventId: string
  [Symbol.asyncIterator](): EventStream
}

interface Waiter {
  resolve(result: IteratorResult<ParsedEvent, undefined>): void
  reject(error: Error): void
}

const doneResult: IteratorResult<ParsedEvent, undefined> = { done: true, value: undefined }

class Stream implements EventStream {
  readonly #engine: Engine
  readonly #maxBuffered: number
  // A queue as an array and a head index: shift() would make draining a large chunk quadratic.
  #queue: ParsedEvent[] = []
  #head = 0
  readonly #waiters: Waiter[] = []
  #ended = false
  #failure: Error | undefined
  #space: (() => void) | undefined
  #taken: string
  /** close() threw buffered events away: the engine's id is past them. */
  #dropped = false

  constructor(options: EventsOptions) {
    const { maxBufferedEvents = 100, onReconnecting, ...clientOptions } = options
    if (onReconnecting !== undefined && typeof onReconnecting !== 'function') {
      throw new TypeError(
        `Expected \`onReconnecting\` to be a function, got \`${String(onReconnecting)}\` (${typeof onReconnecting})`,
      )
    }
    if (!Number.isSafeInteger(maxBufferedEvents) || maxBufferedEvents < 1) {
      throw new RangeError(
        `Expected \`maxBufferedEvents\` to be a positive integer, got \`${String(maxBufferedEvents)}\` (${typeof maxBufferedEvents})`,
      )
    }
    this.#maxBuffered = maxBufferedEvents
    this.#taken = options.lastEventId ?? ''
    this.#engine = new Engine(
      clientOptions,
      {
        onEvent: (event) => this.#push(event),
        ...(onReconnecting === undefined ? {} : { onReconnecting }),
        onClosed: () => this.#finish(undefined),
        onFailure: (error) => this.#finish(error),
      },
      {
        waitForCapacity: () =>
          this.#size() < this.#maxBuffered
            ? undefined
            : new Promise<void>((resolve) => (this.#space = resolve)),
      },
    ).start()
  }

  get state(): ConnectionState {
    return this.#engine.state
  }

  get lastEventId(): string {
    // The id of the last event *taken* from the iterator: events still buffered were not seen, so
    // resuming from here must not skip them. With an empty buffer everything received was taken,
    // and the engine's id also counts id-only blocks.
    return this.#size() === 0 && !this.#dropped ? this.#engine.lastEventId : this.#taken
  }

  [Symbol.asyncIterator](): EventStream {
    return this
  }

  next(): Promise<IteratorResult<ParsedEvent, undefined>> {
    if (this.#size() > 0) {
      const event = this.#queue[this.#head]!
      this.#head++
      this.#taken = event.lastEventId
      if (this.#head === this.#queue.length) {
        this.#queue = []
        this.#head = 0
      }
      if (this.#size() < this.#maxBuffered) this.#release()
      return Promise.resolve({ done: false, value: event })
    }
    if (this.#failure !== undefined) {
      const error = this.#failure
      this.#failure = undefined
      return Promise.reject(error)
    }
    if (this.#ended) return Promise.resolve(doneResult)
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }))
  }

  return(): Promise<IteratorResult<ParsedEvent, undefined>> {
    this.close()
    return Promise.resolve(doneResult)
  }

  close(): void {
    if (this.#size() > 0) this.#dropped = true
    this.#queue = []
    this.#head = 0
    this.#engine.close()
    // The engine reported onClosed (or had already ended): make sure nothing waits any more.
    this.#failure = undefined
    this.#finish(undefined)
  }

  #size(): number {
    return this.#queue.length - this.#head
  }

  #release(): void {
    const space = this.#space
    this.#space = undefined
    space?.()
  }

  #push(event: ParsedEvent): void {
    const waiter = this.#waiters.shift()
    if (waiter === undefined) this.#queue.push(event)
    else {
      this.#taken = event.lastEventId
      waiter.resolve({ done: false, value: event })
    }
  }

  #finish(error: Error | undefined): void {
    if (this.#ended) return
    this.#ended = true
    this.#release()
    // Waiters exist only while the queue is empty: the failure goes to the first of them.
    const waiters = this.#waiters.splice(0)
    if (error !== undefined && waiters.length === 0) this.#failure = error
    for (const [i, waiter] of waiters.entries()) {
      if (i === 0 && error !== undefined) waiter.reject(error)
      else waiter.resolve(doneResult)
    }
  }
}

/**
 * Opens an SSE stream as an async iterator: the same engine, options and reconnection as
 * {@link connect}. The request starts at once; events wait in a bounded buffer for the loop.
 *
 * @example
 * ```ts
 * for await (const event of events({ url: 'https://example.com/stream', signal })) {
 *   console.log(event.type, event.data)
 * }
 * ```
 * @throws {TypeError | RangeError} for bad options (synchronously).
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
 */
export function events(options: EventsOptions): EventStream {
  return new Stream(options)
}
