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
} as const

/** One of the {@link ErrorCodes} values. */
export type ErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes]

/** Options of {@link SseError}. */
export interface SseErrorOptions {
  /** The underlying error. */
  cause?: unknown
  /** The HTTP status this error maps to, when it reaches an HTTP client. */
  status?: number
}

/** The base of every error that ssehub throws or reports. */
export class SseError extends Error {
  /** A stable machine-readable code, e.g. `ERR_SSE_BAD_REQUEST`. */
  readonly code: ErrorCode
  /** HTTP status for the server's JSON error answer. */
  readonly status: number

  constructor(code: ErrorCode, message: string, options: SseErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.name = 'SseError'
    this.code = code
    this.status = options.status ?? 500
    Object.defineProperty(this, brand, { value: true })
  }
}

/** True when `value` is an {@link SseError}, from this or any other copy of ssehub. */
export function isSseError(value: unknown): value is SseError {
  return typeof value === 'object' && value !== null && brand in value
}
