/**
 * ssehub's one error base class. Every operational error carries a stable `code` (`ERR_SSE_*`)
 * that programs can switch on; messages say what to do next.
 *
 * Like undici, the class is branded with a `Symbol.for` key so that {@link isSseError} works even
 * when two copies of the package are loaded (an app and a plugin each bundling ssehub).
 */
const brand = Symbol.for('ssehub.error')

/** Stable error codes. Keep `docs/errors.md` in sync (a test checks it). */
export const ErrorCodes = {
  /** A request or publish is malformed: a missing target, a field of the wrong type. */
  BAD_REQUEST: 'ERR_SSE_BAD_REQUEST',
  /** An id, event name or topic would break the wire format (CR, LF or NUL). */
  INVALID_FIELD: 'ERR_SSE_INVALID_FIELD',
  /** A request body is larger than `maxBodyBytes`. */
  BODY_TOO_LARGE: 'ERR_SSE_BODY_TOO_LARGE',
  /** The request needs `Authorization: Bearer <key>`. */
  UNAUTHORIZED: 'ERR_SSE_UNAUTHORIZED',
  /** The token is valid but does not allow this topic, client id or target. */
  FORBIDDEN: 'ERR_SSE_FORBIDDEN',
  /** Too many publishes or connections from one source; see `Retry-After`. */
  RATE_LIMITED: 'ERR_SSE_RATE_LIMITED',
  /** The request line or headers are larger than the server accepts. */
  HEADERS_TOO_LARGE: 'ERR_SSE_HEADERS_TOO_LARGE',
  /** No such route. */
  NOT_FOUND: 'ERR_SSE_NOT_FOUND',
  /** The route exists but not for this method. */
  METHOD_NOT_ALLOWED: 'ERR_SSE_METHOD_NOT_ALLOWED',
  /** The body's Content-Type is not JSON nor form-encoded. */
  UNSUPPORTED_MEDIA_TYPE: 'ERR_SSE_UNSUPPORTED_MEDIA_TYPE',
  /** A connection limit was reached and the overflow policy is `reject`. */
  LIMIT_REACHED: 'ERR_SSE_LIMIT_REACHED',
  /** The hub is closing or closed. */
  CLOSED: 'ERR_SSE_CLOSED',
  /** A bug in the hub: the request failed; the error was reported to the hub's `error` listeners. */
  INTERNAL: 'ERR_SSE_INTERNAL',
  /** The broker (e.g. Redis) cannot take the publish now. */
  BROKER_UNAVAILABLE: 'ERR_SSE_BROKER_UNAVAILABLE',
  /** An SSE stream sent a line or event larger than the parser's limit. */
  LINE_TOO_LONG: 'ERR_SSE_LINE_TOO_LONG',
  /** A server answered with a status or Content-Type that is not an event stream. */
  BAD_RESPONSE: 'ERR_SSE_BAD_RESPONSE',
  /** Writing to a connection failed. */
  WRITE_FAILED: 'ERR_SSE_WRITE_FAILED',
  /** An upstream (e.g. an OpenAI-compatible API) reported an error. */
  UPSTREAM: 'ERR_SSE_UPSTREAM',
  /**
   * Client side: a connection failed or dropped and was not re-established (reconnection off,
   * `maxAttempts` reached, or no byte within `heartbeatTimeoutMs` with reconnection off).
   */
  CONNECTION_FAILED: 'ERR_SSE_CONNECTION_FAILED',
  /** The request did not arrive in time (`headersTimeoutMs`, `requestTimeoutMs`). */
  REQUEST_TIMEOUT: 'ERR_SSE_REQUEST_TIMEOUT',
  /** The request conflicts with the current state (e.g. a demo with that id is already running). */
  CONFLICT: 'ERR_SSE_CONFLICT',
} as const

/** One of the {@link ErrorCodes} values. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

/**
 * The HTTP status of each code: the one place where a status is chosen. `null` for codes that
 * never reach an HTTP answer (client-side codes, write failures); such an error answers 500 if a
 * bug lets it through. `docs/errors.md` lists the same statuses (a test checks it).
 */
export const ErrorStatus: Readonly<Record<ErrorCode, number | null>> = {
  ERR_SSE_BAD_REQUEST: 400,
  ERR_SSE_INVALID_FIELD: 400,
  ERR_SSE_UNAUTHORIZED: 401,
  ERR_SSE_FORBIDDEN: 403,
  ERR_SSE_NOT_FOUND: 404,
  ERR_SSE_METHOD_NOT_ALLOWED: 405,
  ERR_SSE_REQUEST_TIMEOUT: 408,
  ERR_SSE_CONFLICT: 409,
  ERR_SSE_BODY_TOO_LARGE: 413,
  ERR_SSE_UNSUPPORTED_MEDIA_TYPE: 415,
  ERR_SSE_RATE_LIMITED: 429,
  ERR_SSE_HEADERS_TOO_LARGE: 431,
  ERR_SSE_INTERNAL: 500,
  ERR_SSE_LIMIT_REACHED: 503,
  ERR_SSE_CLOSED: 503,
  ERR_SSE_BROKER_UNAVAILABLE: 503,
  ERR_SSE_LINE_TOO_LONG: null,
  ERR_SSE_BAD_RESPONSE: null,
  ERR_SSE_WRITE_FAILED: null,
  ERR_SSE_UPSTREAM: null,
  ERR_SSE_CONNECTION_FAILED: null,
}

/** Options of {@link SseError}. */
export interface SseErrorOptions {
  /** The underlying error. */
  cause?: unknown
}

/** The base of every error that ssehub throws or reports. */
export class SseError extends Error {
  /** A stable machine-readable code, e.g. `ERR_SSE_BAD_REQUEST`. */
  readonly code: ErrorCode
  /**
   * The HTTP status of the server's JSON error answer: {@link ErrorStatus} of the code (500 for
   * codes that have none). Client-side subclasses set the status the server answered.
   */
  readonly status: number

  constructor(code: ErrorCode, message: string, options: SseErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'SseError'
    this.code = code
    this.status = ErrorStatus[code] ?? 500
    Object.defineProperty(this, brand, { value: true })
  }
}

/** True when `value` is an {@link SseError}, from this or any other copy of ssehub. */
export function isSseError(value: unknown): value is SseError {
  return typeof value === 'object' && value !== null && brand in value
}

/**
 * The JSON body of an HTTP error answer, `{"error": {"code", "message"}}`: the one writer of it,
 * used by every front and transport.
 */
export function errorBody(error: SseError): string {
  return JSON.stringify({ error: { code: error.code, message: error.message } })
}
