import { ErrorCodes, SseError } from '../errors.js'

/** Fields of a {@link ResponseError}. */
export interface ResponseErrorDetails {
  /** The HTTP status of the response (`200` when only the Content-Type was wrong). */
  readonly status: number
  /** The status text, e.g. `Internal Server Error` (empty over HTTP/2). */
  readonly statusText: string
  /** The URL that answered (after redirects), without its query string. */
  readonly url: string
  /** The response's Content-Type, or `null` when it had none. */
  readonly contentType: string | null
  /** The start of the response body, for error details (bounded by `maxErrorBodyBytes`). */
  readonly body: string
}

/**
 * A server answered something that is not an event stream: a status other than 200 (other than
 * 2xx with the `acceptAny2xx` option; `204` is not an error but the end), or a Content-Type
 * other than `text/event-stream`. Code
 * `ERR_SSE_BAD_RESPONSE`. The client does not reconnect after it: the same request would get the
 * same answer.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
 */
export class ResponseError extends SseError implements ResponseErrorDetails {
  /** The HTTP status the server answered. */
  override readonly status: number
  readonly statusText: string
  readonly url: string
  readonly contentType: string | null
  readonly body: string

  constructor(message: string, details: ResponseErrorDetails) {
    super(ErrorCodes.BAD_RESPONSE, message)
    this.name = 'ResponseError'
    this.status = details.status
    this.statusText = details.statusText
    this.url = details.url
    this.contentType = details.contentType
    this.body = details.body
  }
}

/** A URL without userinfo and query string: what error messages and logs may show. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url)
    return `${parsed.origin}${parsed.pathname}`
  } catch {
    // Not a URL we can parse (it came from a custom fetch): show nothing that could be a secret.
    return '(unparsable URL)'
  }
}

/**
 * An upstream (an OpenAI-compatible API) reported an error: in an error response's JSON body, in
 * an `error` event, or in an error chunk. Code `ERR_SSE_UPSTREAM`; `message` is the upstream's.
 */
export class UpstreamError extends SseError {
  /** The upstream's error object as sent (e.g. `{message, type, code, param}`), if it was JSON. */
  readonly error: unknown
  /** The HTTP status the upstream answered, when it answered one (else 500). */
  override readonly status: number

  constructor(message: string, error: unknown, options: { status?: number; cause?: unknown } = {}) {
    super(ErrorCodes.UPSTREAM, message, options.cause === undefined ? {} : { cause: options.cause })
    this.name = 'UpstreamError'
    this.error = error
    this.status = options.status ?? 500
  }
}
