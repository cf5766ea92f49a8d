/**
 * The client engine: one fetch-based SSE connection that reconnects per the spec. The listener API
 * ({@link connect}), the async iterator ({@link events}) and the `EventSource` class are thin
 * shells over it. Uses `wire` and the global `fetch`/`Headers`/`AbortController` only: it runs in
 * Node >= 20, browsers, workers and edge runtimes.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
 */
import { ErrorCodes, SseError } from '../errors.js'
import { createParser, type ParsedEvent, type Parser } from '../wire/parse.js'
import { ResponseError, redactUrl } from './errors.js'

/** The `fetch` the client calls: the global one or any compatible function (undici, a mock). */
export type FetchLike = (url: string, init: RequestInit) => Promise<Response>

// Taken from `RequestInit` rather than named: lib.dom has `HeadersInit`, `BodyInit` and
// `RequestCredentials`, Node's types (without the DOM lib) do not, and these declarations serve
// both.
type HeadersInit = NonNullable<RequestInit['headers']>
type BodyInit = NonNullable<RequestInit['body']>
type RequestCredentials = NonNullable<RequestInit['credentials']>

/**
 * A request body that can be sent again on each reconnection (a `ReadableStream` cannot: it is
 * consumed by the first request).
 */
export type RequestBody = Exclude<BodyInit, ReadableStream>

/** What a `headers` function is told before each request. */
export interface AttemptInfo {
  /** 1 for the first request, 2 for the first reconnection, and so on. */
  readonly attempt: number
  /** The last event id the request will send as `Last-Event-ID` (`''`: none). */
  readonly lastEventId: string
}

/** Reconnection tuning: the spec's delay plus exponential backoff with jitter. */
export interface ReconnectOptions {
  /**
   * The reconnection time before the server sets one with `retry:`: the delay before the first
   * reconnection after a stream that was open.
   *
   * @default 1000
   */
  retryMs?: number
  /**
   * The ceiling of the backoff. After consecutive failed attempts the delay grows as
   * `retry * 2^(failures - 1)` up to this ceiling (never below the server's `retry:`).
   *
   * @default 30_000
   */
  maxRetryMs?: number
  /**
   * Jitter: when true, a delay after a failed attempt is drawn uniformly between the reconnection
   * time and the backoff ceiling, so that clients dropped together do not come back together. The
   * first reconnection after an open stream always waits exactly the reconnection time.
   *
   * @default true
   */
  jitter?: boolean
  /**
   * The most reconnection attempts in a row that do not reach an open stream; then the client
   * fails with `ERR_SSE_CONNECTION_FAILED`. Reset by every successful open. `null`: no limit.
   *
   * @default null
   */
  maxAttempts?: number | null
}

/** Options of {@link connect} and {@link events}. */
export interface ClientOptions {
  /** The stream's URL. Relative URLs resolve against `location` in browsers. */
  url: string | URL
  /**
   * The request method. LLM APIs stream from a POST.
   *
   * @default 'GET'
   */
  method?: string
  /**
   * Request headers, or a function (async allowed) called before every request, reconnections
   * included: the place to refresh a token. `Accept: text/event-stream` is added unless present;
   * `Last-Event-ID` is set whenever a last event id is known.
   */
  headers?: HeadersInit | ((info: AttemptInfo) => HeadersInit | Promise<HeadersInit>)
  /** The request body, sent again with every reconnection. */
  body?: RequestBody | null
  /**
   * The request's credentials mode (browsers): `include` sends cookies cross-origin, like
   * `EventSource`'s `withCredentials`.
   *
   * @default 'same-origin'
   */
  credentials?: RequestCredentials
  /**
   * The `fetch` to use. It is called as a plain function (never as a method of an object), so
   * `window.fetch`, a bound method or a wrapper all work.
   *
   * @default globalThis.fetch
   */
  fetch?: FetchLike
  /** Aborting it closes the stream for good; `onClosed` fires with reason `abort`. */
  signal?: AbortSignal
  /**
   * The last event id to start from, sent as `Last-Event-ID` by the first request. In browsers,
   * `Last-Event-ID` (like any custom header) makes a cross-origin request non-simple: the server
   * must answer the CORS preflight with `Access-Control-Allow-Headers: Last-Event-ID`.
   *
   * @default ''
   */
  lastEventId?: string
  /**
   * Reconnection: `true` per the spec with backoff (see {@link ReconnectOptions}), `false` to end
   * (`onClosed`, reason `end`) when the server ends the stream and fail on a network error.
   *
   * @default true
   */
  reconnect?: boolean | ReconnectOptions
  /**
   * The heartbeat watchdog: when no byte arrives for this long (from the request on), the
   * connection is dropped and re-established, as after a network error. Set it above the
   * server's heartbeat interval: a dead proxy can keep a TCP connection open forever. `null`: off.
   *
   * @default null
   */
  heartbeatTimeoutMs?: number | null
  /**
   * The parser's longest line, in UTF-16 code units; a longer line fails the stream with
   * `ERR_SSE_LINE_TOO_LONG`. `null`: no limit.
   *
   * @default 8_388_608
   */
  maxLineChars?: number | null
  /**
   * The parser's largest event data, in UTF-16 code units; a larger event fails the stream with
   * `ERR_SSE_LINE_TOO_LONG`. `null`: no limit.
   *
   * @default 16_777_216
   */
  maxEventChars?: number | null
  /**
   * How much of an error response's body is read into {@link ResponseError.body}.
   *
   * @default 65_536
   */
  maxErrorBodyBytes?: number
  /**
   * Which statuses open a stream. `false`: only `200`, as the spec says (and `EventSource` and
   * `ssehub listen` do); any other status but `204` fails the connection (a {@link ResponseError},
   * no reconnection). `true`: any 2xx but `204` opens (for servers that answer e.g. `201`). `204`
   * always closes the stream for good.
   *
   * @default false
   * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
   */
  acceptAny2xx?: boolean
}

/** Why a stream closed without an error. */
export type ClosedReason =
  /** `close()` was called. */
  | 'close'
  /** The `signal` was aborted. */
  | 'abort'
  /** The server answered `204 No Content`: the spec's "stop reconnecting". */
  | 'no-content'
  /** The server ended the stream and reconnection is off. */
  | 'end'

/** What {@link ClientListener.onClosed} is told. */
export interface ClosedInfo {
  readonly reason: ClosedReason
}

/** What {@link ClientListener.onReconnecting} is told. */
export interface ReconnectInfo {
  /** 1 for the first reconnection after an open stream, counting up while attempts fail. */
  readonly attempt: number
  /** How long the client waits before the request. */
  readonly delayMs: number
  /** Why the previous connection ended; `undefined` when the server ended it cleanly. */
  readonly error: SseError | undefined
}

/**
 * Callbacks of {@link connect}, in the okhttp-sse shape. Exactly one of `onClosed` and
 * `onFailure` is called, once, however the stream ends; no callback is called after it.
 */
export interface ClientListener {
  /** A response was accepted as an event stream (after every (re)connection). */
  onOpen?: (response: Response) => void
  /** An event arrived. */
  onEvent?: (event: ParsedEvent) => void
  /** A comment line arrived (servers send them as heartbeats). */
  onComment?: (comment: string) => void
  /**
   * The connection ended, or an attempt failed, and the client will reconnect after `delayMs`:
   * called once per attempt, with the cause in `error` (a network error, e.g. `fetch failed
   * (connect ECONNREFUSED 127.0.0.1:8080)`, or the watchdog). The place to log or count
   * failures; `maxAttempts` bounds them.
   */
  onReconnecting?: (info: ReconnectInfo) => void
  /** The stream closed without an error: `close()`, abort, a `204`, or an end without reconnect. */
  onClosed?: (info: ClosedInfo) => void
  /**
   * The stream failed for good. `error` is a {@link ResponseError} (bad status or Content-Type),
   * an {@link SseError} with code `ERR_SSE_CONNECTION_FAILED` (network error or watchdog without
   * reconnection, or `maxAttempts` reached), `ERR_SSE_LINE_TOO_LONG`, a `TypeError` from a broken
   * `fetch` (one that throws instead of rejecting), or whatever a `headers` function or one of
   * these callbacks threw. Required: a failure is never silently dropped.
   */
  onFailure: (error: Error) => void
}

/** The connection state. */
export type ConnectionState = 'connecting' | 'open' | 'closed'

/** A running stream made by {@link connect}. */
export interface Connection {
  /** Closes the stream for good; `onClosed` (reason `close`) fires before this returns. */
  close(): void
  /** The current state. */
  readonly state: ConnectionState
  /** The last event id received (what the next reconnection sends as `Last-Event-ID`). */
  readonly lastEventId: string
  /** The current reconnection time in ms: `retryMs` until the server sends `retry:`. */
  readonly retryMs: number
}

/** @internal Hooks for the shells built on the engine; not part of the public options. */
export interface EngineHooks {
  /** Before each read: a promise to wait on while the consumer has no room (backpressure). */
  readonly waitForCapacity?: () => Promise<void> | undefined
}

// setTimeout fires at once for delays above 2^31 - 1 ms: clamp what a server sends.
const maxTimerMs = 2_147_483_647

interface ResolvedOptions {
  readonly url: string
  readonly method: string
  readonly headers: ClientOptions['headers']
  readonly body: RequestBody | null
  readonly credentials: RequestCredentials
  readonly fetch: FetchLike
  readonly signal: AbortSignal | undefined
  readonly lastEventId: string
  readonly reconnect: boolean
  readonly retryMs: number
  readonly maxRetryMs: number
  readonly jitter: boolean
  readonly maxAttempts: number | null
  readonly heartbeatTimeoutMs: number | null
  readonly maxLineChars: number | null | undefined
  readonly maxEventChars: number | null | undefined
  readonly maxErrorBodyBytes: number
  readonly acceptAny2xx: boolean
}

function describe(value: unknown): string {
  return `\`${String(value)}\` (${typeof value})`
}

function expectMs(name: string, value: number, allowZero: boolean): number {
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new RangeError(
      `Expected \`${name}\` to be a ${allowZero ? 'non-negative' : 'positive'} finite number, got ${describe(value)}`,
    )
  }
  return Math.min(value, maxTimerMs)
}

function resolveOptions(options: ClientOptions): ResolvedOptions {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`Expected options to be an object, got ${describe(options)}`)
  }
  let url: string
  try {
    const base = (globalThis as { location?: { href?: string } }).location?.href
    url = new URL(options.url, base).href
  } catch (error) {
    throw new TypeError(`Expected \`url\` to be an absolute URL, got ${describe(options.url)}`, {
      cause: error,
    })
  }
  // `fetch` may be missing at runtime (old runtimes) whatever the types say. The global one is
  // bound: browsers throw "Illegal invocation" when `fetch` is called with another `this`.
  const fetchFn: FetchLike | undefined =
    options.fetch ??
    (typeof globalThis.fetch === 'function' ? globalThis.fetch.bind(globalThis) : undefined)
  if (typeof fetchFn !== 'function') {
    throw new TypeError(
      `Expected \`fetch\` to be a function, got ${describe(fetchFn)}: pass \`fetch\` in the options.`,
    )
  }
  const reconnect = options.reconnect ?? true
  const tuning: ReconnectOptions = typeof reconnect === 'object' ? reconnect : {}
  const maxAttempts = tuning.maxAttempts ?? null
  if (maxAttempts !== null && (!Number.isSafeInteger(maxAttempts) || maxAttempts < 0)) {
    throw new RangeError(
      `Expected \`maxAttempts\` to be a non-negative integer or null, got ${describe(maxAttempts)}`,
    )
  }
  const maxErrorBodyBytes = options.maxErrorBodyBytes ?? 65_536
  if (!Number.isSafeInteger(maxErrorBodyBytes) || maxErrorBodyBytes < 0) {
    throw new RangeError(
      `Expected \`maxErrorBodyBytes\` to be a non-negative integer, got ${describe(maxErrorBodyBytes)}`,
    )
  }
  const heartbeat = options.heartbeatTimeoutMs ?? null
  const method = (options.method ?? 'GET').toUpperCase()
  if ((method === 'GET' || method === 'HEAD') && options.body != null) {
    throw new TypeError(`A ${method} request cannot have a body: set \`method\` (e.g. 'POST').`)
  }
  const credentials = options.credentials ?? 'same-origin'
  checkRequest(url, { method, body: options.body ?? null, credentials })
  return {
    url,
    method,
    headers: options.headers,
    body: options.body ?? null,
    credentials,
    fetch: fetchFn,
    signal: options.signal,
    lastEventId: options.lastEventId ?? '',
    reconnect: reconnect !== false,
    retryMs: expectMs('retryMs', tuning.retryMs ?? 1000, true),
    maxRetryMs: expectMs('maxRetryMs', tuning.maxRetryMs ?? 30_000, true),
    jitter: tuning.jitter ?? true,
    maxAttempts,
    heartbeatTimeoutMs:
      heartbeat === null ? null : expectMs('heartbeatTimeoutMs', heartbeat, false),
    maxLineChars: options.maxLineChars,
    maxEventChars: options.maxEventChars,
    maxErrorBodyBytes,
    acceptAny2xx: options.acceptAny2xx === true,
  }
}

/**
 * Fails at construction a request that `fetch` would refuse on every attempt (a URL with
 * credentials, a forbidden or malformed method, a bad `credentials` mode): a programming error
 * that retrying cannot fix. The platform's `Request` constructor is the judge, so the rules are
 * exactly fetch's. Its message may quote the URL (credentials, a token in the query): redacted.
 */
function checkRequest(url: string, init: RequestInit): void {
  if (typeof Request !== 'function') return
  try {
    new Request(url, init)
  } catch (error) {
    const redacted = redactUrl(url)
    const message = (error instanceof Error ? error.message : String(error))
      .split(url)
      .join(redacted)
    // No `cause`: it would carry the unredacted URL into logs that print causes.
    // eslint-disable-next-line preserve-caught-error
    throw new TypeError(`The request to ${redacted} cannot be made: ${message}`)
  }
}

/**
 * A header value as a `ByteString`: the UTF-8 bytes of `text`, one character per byte. Fetch
 * sends each character of a header value as one byte and refuses characters above U+00FF, so an
 * event id such as `…` would throw; browsers send the id's UTF-8 bytes in `Last-Event-ID`, and so
 * does this client.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
 */
export function utf8HeaderValue(text: string): string {
  // Fast path: ASCII is its own UTF-8.
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(text)) return text
  let value = ''
  for (const byte of new TextEncoder().encode(text)) value += String.fromCharCode(byte)
  return value
}

/**
 * The delay before reconnection attempt number `attempt` (1-based, counting attempts since the
 * last open stream). The first waits exactly the reconnection time, as the spec says; later ones
 * back off exponentially up to `maxRetryMs`, drawn uniformly between the reconnection time and
 * that ceiling when `jitter` is on (the server's `retry:` stays the floor).
 *
 * @param random A source of numbers in [0, 1); tests pass a fixed one.
 */
export function reconnectDelay(
  attempt: number,
  options: { retryMs: number; maxRetryMs: number; jitter: boolean },
  random: () => number = Math.random,
): number {
  const { retryMs, maxRetryMs, jitter } = options
  if (attempt <= 1) return retryMs
  const ceiling = Math.min(Math.max(maxRetryMs, retryMs), retryMs * 2 ** (attempt - 1))
  if (!jitter) return ceiling
  return retryMs + Math.floor(random() * (ceiling - retryMs + 1))
}

function isEventStream(contentType: string | null): boolean {
  if (contentType === null) return false
  const semicolon = contentType.indexOf(';')
  const essence = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim()
  return essence.toLowerCase() === 'text/event-stream'
}

function causeText(error: unknown): string {
  if (!(error instanceof Error)) return String(error)
  const cause = error.cause
  // undici says only "fetch failed"; the reason (ECONNREFUSED, ...) is in the cause.
  return cause instanceof Error && cause.message !== ''
    ? `${error.message} (${cause.message})`
    : error.message
}

/** Reads at most `maxBytes` of a body as text, then cancels the rest. */
async function readBounded(response: Response, maxBytes: number): Promise<string> {
  const body = response.body
  if (body === null) return ''
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let text = ''
  let bytes = 0
  try {
    while (bytes < maxBytes) {
      const { done, value } = await reader.read()
      if (done) break
      const chunk =
        value.byteLength > maxBytes - bytes ? value.subarray(0, maxBytes - bytes) : value
      bytes += chunk.byteLength
      text += decoder.decode(chunk, { stream: true })
    }
    return text + decoder.decode()
  } finally {
    // Release the connection: the rest of an error body is of no use.
    await reader.cancel().catch(() => undefined)
  }
}

/**
 * Calls a terminal callback (onClosed, onFailure). Should it throw, there is no one left to tell:
 * the exception is rethrown from a microtask (an uncaught exception, as from an event listener)
 * rather than swallowed, and the engine's own state is already final.
 */
function report(callback: () => void): void {
  try {
    callback()
  } catch (error) {
    queueMicrotask(() => {
      throw error
    })
  }
}

/**
 * Marks an exception that fails the stream at once, so that it is not mistaken for a network
 * error and retried: one thrown by a user callback, or by a broken `fetch`.
 */
class Fatal extends Error {
  constructor(readonly error: unknown) {
    super('not a network error')
  }
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}

type Outcome =
  /** The attempt ended the stream for good (closed or failed): nothing more to do. */
  | { readonly kind: 'final' }
  /** The connection ended (cleanly when `error` is undefined) and may be re-established. */
  | { readonly kind: 'retry'; readonly opened: boolean; readonly error: SseError | undefined }

const finalOutcome: Outcome = { kind: 'final' }

/** @internal The engine behind {@link connect}, {@link events} and `EventSource`. */
export class Engine implements Connection {
  readonly #options: ResolvedOptions
  readonly #listener: ClientListener
  readonly #hooks: EngineHooks
  readonly #parser: Parser
  #state: ConnectionState = 'connecting'
  #done = false
  #lastEventId: string
  #retryMs: number
  /** Aborts the request in flight (fetch and body read). */
  #attempt: AbortController | undefined
  #timer: ReturnType<typeof setTimeout> | undefined
  #wake: (() => void) | undefined
  readonly #onAbort = (): void => this.#closed('abort')

  constructor(options: ClientOptions, listener: ClientListener, hooks: EngineHooks = {}) {
    if (typeof listener?.onFailure !== 'function') {
      throw new TypeError(
        'Expected `listener.onFailure` to be a function: failures must be handled.',
      )
    }
    this.#options = resolveOptions(options)
    this.#listener = listener
    this.#hooks = hooks
    this.#lastEventId = this.#options.lastEventId
    this.#retryMs = this.#options.retryMs
    this.#parser = createParser({
      onEvent: (event) => this.#deliver(event),
      onComment: (comment) => {
        if (this.#done || this.#listener.onComment === undefined) return
        this.#call(this.#listener.onComment, comment)
      },
      onRetry: (ms) => {
        this.#retryMs = Math.min(ms, maxTimerMs)
      },
      onError: (error) => {
        // Thrown out of feed(): the stream fails at once, nothing after the bad line is delivered.
        throw error
      },
      maxLineChars: this.#options.maxLineChars,
      maxEventChars: this.#options.maxEventChars,
    })
  }

  /** Starts the engine (in a microtask: callbacks never run before the caller has the handle). */
  start(): this {
    const signal = this.#options.signal
    signal?.addEventListener('abort', this.#onAbort, { once: true })
    queueMicrotask(() => {
      if (signal?.aborted === true) return this.#closed('abort')
      // #run reports every failure itself; a rejection here would be a bug in the engine: fail the
      // stream with it rather than leave it unreported.
      this.#run().catch((error: unknown) => this.#failed(asError(error)))
    })
    return this
  }

  get state(): ConnectionState {
    return this.#state
  }

  get lastEventId(): string {
    return this.#lastEventId
  }

  get retryMs(): number {
    return this.#retryMs
  }

  close(): void {
    this.#closed('close')
  }

  #deliver(event: ParsedEvent): void {
    // close() from an earlier event of the same chunk: deliver nothing more.
    if (this.#done) return
    this.#lastEventId = event.lastEventId
    if (this.#listener.onEvent !== undefined) this.#call(this.#listener.onEvent, event)
  }

  #call<T>(callback: (value: T) => void, value: T): void {
    try {
      callback(value)
    } catch (error) {
      throw new Fatal(error)
    }
  }

  /** Ends the stream for good without error. Idempotent: only the first end is reported. */
  #closed(reason: ClosedReason): void {
    if (!this.#end()) return
    const onClosed = this.#listener.onClosed
    if (onClosed !== undefined) report(() => onClosed({ reason }))
  }

  #failed(error: Error): void {
    if (!this.#end()) return
    report(() => this.#listener.onFailure(error))
  }

  #end(): boolean {
    if (this.#done) return false
    this.#done = true
    this.#state = 'closed'
    this.#options.signal?.removeEventListener('abort', this.#onAbort)
    this.#attempt?.abort()
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#wake?.()
    return true
  }

  async #run(): Promise<void> {
    let failures = 0
    for (let attempt = 1; !this.#done; attempt++) {
      const outcome = await this.#connectOnce(attempt)
      if (outcome.kind === 'final' || this.#done) return
      if (outcome.opened) failures = 0
      if (!this.#options.reconnect) {
        if (outcome.error === undefined) this.#closed('end')
        else this.#failed(outcome.error)
        return
      }
      failures++
      const { maxAttempts } = this.#options
      if (maxAttempts !== null && failures > maxAttempts) {
        this.#failed(
          new SseError(
            ErrorCodes.CONNECTION_FAILED,
            `Gave up on ${redactUrl(this.#options.url)} after ${maxAttempts} reconnection attempts${outcome.error === undefined ? '' : `: ${outcome.error.message}`}. Raise maxAttempts (null: no limit) to keep trying.`,
            { cause: outcome.error },
          ),
        )
        return
      }
      const delayMs = reconnectDelay(failures, {
        retryMs: this.#retryMs,
        maxRetryMs: this.#options.maxRetryMs,
        jitter: this.#options.jitter,
      })
      this.#state = 'connecting'
      try {
        this.#listener.onReconnecting?.({ attempt: failures, delayMs, error: outcome.error })
      } catch (error) {
        this.#failed(asError(error))
        return
      }
      await this.#sleep(delayMs)
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#done) return resolve()
      this.#wake = () => {
        this.#wake = undefined
        resolve()
      }
      this.#timer = setTimeout(() => {
        this.#timer = undefined
        this.#wake?.()
      }, ms)
    })
  }

  async #headers(attempt: number): Promise<Headers> {
    const source = this.#options.headers
    const init =
      typeof source === 'function'
        ? await source({ attempt, lastEventId: this.#lastEventId })
        : source
    const headers = new Headers(init)
    if (!headers.has('accept')) headers.set('accept', 'text/event-stream')
    if (this.#lastEventId !== '') headers.set('last-event-id', utf8HeaderValue(this.#lastEventId))
    return headers
  }

  /** One request and, if it opens, its stream until it ends. */
  async #connectOnce(attempt: number): Promise<Outcome> {
    const options = this.#options
    let headers: Headers
    try {
      headers = await this.#headers(attempt)
    } catch (error) {
      // A headers function that throws (a token refresh that failed) is not a network error:
      // retrying blindly could hammer an auth server. It fails the stream.
      this.#failed(asError(error))
      return finalOutcome
    }
    if (this.#done) return finalOutcome
    const controller = new AbortController()
    this.#attempt = controller
    let opened = false
    let watchdog: Watchdog | undefined
    if (options.heartbeatTimeoutMs !== null) {
      watchdog = new Watchdog(options.heartbeatTimeoutMs, () => controller.abort(watchdog))
    }
    try {
      const response = await this.#fetch(headers, controller.signal)
      if (this.#done) {
        await response.body?.cancel().catch(() => undefined)
        return finalOutcome
      }
      if (response.status === 204) {
        await response.body?.cancel().catch(() => undefined)
        this.#closed('no-content')
        return finalOutcome
      }
      const rejection = await this.#check(response)
      if (rejection !== undefined) {
        this.#failed(rejection)
        return finalOutcome
      }
      if (this.#done) return finalOutcome
      opened = true
      this.#state = 'open'
      this.#parser.reset({ lastEventId: this.#lastEventId })
      if (this.#listener.onOpen !== undefined) this.#call(this.#listener.onOpen, response)
      if (response.body === null) return { kind: 'retry', opened, error: undefined }
      const reader = response.body.getReader()
      for (;;) {
        const wait = this.#hooks.waitForCapacity?.()
        if (wait !== undefined) {
          watchdog?.pause()
          await wait
          watchdog?.resume()
          if (this.#done) return finalOutcome
        }
        const { done, value } = await reader.read()
        if (this.#done) return finalOutcome
        if (done) return { kind: 'retry', opened, error: undefined }
        watchdog?.touch()
        this.#parser.feed(value)
        this.#lastEventId = this.#parser.lastEventId
        if (this.#done) return finalOutcome
      }
    } catch (error) {
      if (this.#done) return finalOutcome
      if (error instanceof Fatal) {
        this.#failed(asError(error.error))
        return finalOutcome
      }
      if (error instanceof SseError) {
        // The parser's limit: the server would send the same again.
        this.#failed(error)
        return finalOutcome
      }
      const timedOut = watchdog !== undefined && controller.signal.reason === watchdog
      const cause = timedOut ? undefined : error
      const message = timedOut
        ? `No data from ${redactUrl(options.url)} for ${options.heartbeatTimeoutMs} ms (heartbeatTimeoutMs)`
        : `Connection to ${redactUrl(options.url)} failed: ${causeText(error)}`
      return {
        kind: 'retry',
        opened,
        error: new SseError(ErrorCodes.CONNECTION_FAILED, message, { cause }),
      }
    } finally {
      watchdog?.stop()
      // Releases the socket of a body we stopped reading (no-op when it was fully read).
      controller.abort()
      if (this.#attempt === controller) this.#attempt = undefined
    }
  }

  /**
   * Calls `fetch`. A rejection is a network error (retried, and reported to `onReconnecting`);
   * a `fetch` that throws synchronously or resolves with something other than a response is
   * broken, a programming error that would fail the same way forever: it fails the stream.
   */
  async #fetch(headers: Headers, signal: AbortSignal): Promise<Response> {
    const options = this.#options
    // A plain call: `options.fetch(...)` would pass `options` as `this`, which a browser's
    // `window.fetch` refuses with "Illegal invocation".
    const fetchFn = options.fetch
    let pending: Promise<Response>
    // Not a literal in the call: Node's `RequestInit` type lacks `cache`, which fetch honours.
    const init = {
      method: options.method,
      headers,
      body: options.body,
      credentials: options.credentials,
      cache: 'no-store' as const,
      signal,
    }
    try {
      pending = fetchFn(options.url, init)
    } catch (error) {
      throw new Fatal(
        new TypeError(`\`fetch\` threw instead of returning a promise: ${causeText(error)}`, {
          cause: error,
        }),
      )
    }
    const response: unknown = await pending
    if (typeof (response as Partial<Response> | null)?.status !== 'number') {
      throw new Fatal(
        new TypeError(`\`fetch\` resolved with ${describe(response)}, not a Response`),
      )
    }
    return response as Response
  }

  /** The spec's checks of a response; returns the error that fails the connection, if any. */
  async #check(response: Response): Promise<ResponseError | undefined> {
    // The spec: only 200 opens an event stream (204 was handled before).
    const statusOk = this.#options.acceptAny2xx ? response.ok : response.status === 200
    const contentType = response.headers.get('content-type')
    if (statusOk && isEventStream(contentType)) return undefined
    const url = redactUrl(response.url === '' ? this.#options.url : response.url)
    // The body only details the error being reported: should reading it fail (the connection
    // dropped, the watchdog fired), the status or Content-Type error still stands, with no body.
    const body = await readBounded(response, this.#options.maxErrorBodyBytes).catch(() => '')
    const details = {
      status: response.status,
      statusText: response.statusText,
      url,
      contentType,
      body,
    }
    if (!statusOk) {
      const text = response.statusText === '' ? '' : ` ${response.statusText}`
      return new ResponseError(`server answered ${response.status}${text} for ${url}`, details)
    }
    return new ResponseError(
      `expected Content-Type text/event-stream, got ${contentType === null ? 'none' : contentType} (status ${response.status}) from ${url}`,
      details,
    )
  }
}

/**
 * The heartbeat watchdog: calls `onTimeout` once no `touch()` came for `timeoutMs`. One timer,
 * re-armed only when it fires (a touch per chunk costs a `Date.now()`, not a timer).
 */
class Watchdog {
  #last = Date.now()
  #paused = false
  #timer: ReturnType<typeof setTimeout> | undefined

  constructor(
    private readonly timeoutMs: number,
    private readonly onTimeout: () => void,
  ) {
    this.#arm(timeoutMs)
  }

  touch(): void {
    this.#last = Date.now()
  }

  /** While the consumer holds reads back, silence is ours, not the server's. */
  pause(): void {
    this.#paused = true
  }

  resume(): void {
    this.#paused = false
    this.#last = Date.now()
  }

  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  #arm(ms: number): void {
    this.#timer = setTimeout(() => {
      const idle = Date.now() - this.#last
      if (this.#paused || idle < this.timeoutMs)
        this.#arm(this.timeoutMs - (this.#paused ? 0 : idle))
      else {
        this.#timer = undefined
        this.onTimeout()
      }
    }, ms)
  }
}

/**
 * Opens an SSE stream and reports it to `listener` (the okhttp-sse shape): `onOpen` per
 * connection, `onEvent` per event, `onReconnecting` per reconnection (with the cause of a failed
 * attempt), then exactly one of `onClosed` (close, abort, `204`, or an end with reconnection off)
 * and `onFailure` (a status other than 200 or a wrong Content-Type, a network error that is not
 * retried or `maxAttempts` reached, a parser limit, a broken `fetch`, or an exception from a
 * callback).
 *
 * Reconnection follows the spec: after a network error or the end of the stream, wait the
 * reconnection time (`retryMs`, replaced by the server's `retry:`), then request again with
 * `Last-Event-ID` (the id's UTF-8 bytes, as browsers send it); consecutive failures back off
 * exponentially with jitter. A `204` stops for good; any status but 200 fails without
 * reconnecting (`acceptAny2xx` lets any 2xx open).
 *
 * @throws {TypeError | RangeError} for bad options, and for a request that fetch would refuse on
 *   every attempt (a URL with credentials, a forbidden method), synchronously.
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
 */
export function connect(options: ClientOptions, listener: ClientListener): Connection {
  return new Engine(options, listener).start()
}
