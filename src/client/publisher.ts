/**
 * Publishing to a hub server at least once, delivered exactly once: each event gets an
 * idempotency key, and a publish whose outcome is unknown (a timeout, a lost connection) or that
 * the hub refused for now (503, 429, 5xx) is sent again with the same key. The hub publishes a
 * key once within its idempotency window, so a retry of an event that did land returns the first
 * id instead of publishing it twice.
 */
import { ErrorCodes, SseError } from '../errors.js'

/** One event to publish: a target (topics, a client id, everyone) and the event. */
export interface PublishEvent {
  /** One topic or several. */
  readonly topic?: string | readonly string[]
  /** Every connection of this client id. */
  readonly clientId?: string
  /** Every connection. */
  readonly all?: boolean
  /** Event type name. */
  readonly event?: string
  /** Payload: a string is sent as is, any other value JSON-encoded by the hub. */
  readonly data: unknown
  /** Reconnection delay for clients, in ms. */
  readonly retry?: number
  /** The last event of its topics. */
  readonly close?: boolean
}

/** What the hub answered. */
export interface Published {
  /** The event's id. */
  readonly id: string
  /** Connections of the node that answered that it reached (0 for a duplicate). */
  readonly localConnections: number
  /** True when a retry found the event already published (this is its first id). */
  readonly duplicate?: true
}

/** Options of {@link publish}. */
export interface PublishOptions {
  /** The hub server's base URL, e.g. `http://localhost:8080`. */
  readonly hub: string | URL
  /** The publish key or a token that may publish, sent as `Authorization: Bearer`. */
  readonly key?: string
  /** The event's idempotency key. Default: a random UUID, one per call. */
  readonly idempotencyKey?: string
  /**
   * Attempts in all, the first included.
   * @default 5
   */
  readonly attempts?: number
  /**
   * Longest wait for one attempt's answer, in ms; past it the attempt counts as lost and is retried.
   * @default 10000
   */
  readonly timeoutMs?: number
  /**
   * First delay between attempts, in ms; doubled each time (with jitter), at most 5 s. A
   * `Retry-After` of the hub is honoured instead (at most 30 s).
   * @default 200
   */
  readonly backoffMs?: number
  /** Stops retrying (and the attempt under way). */
  readonly signal?: AbortSignal
  /** The fetch to use (a test's, or one with a dispatcher). Default: the global fetch. */
  readonly fetch?: typeof fetch
  /** Told of each failed attempt that will be retried. */
  readonly onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void
}

/** The defaults of {@link PublishOptions}. */
export const PUBLISH_DEFAULTS = Object.freeze({ attempts: 5, timeoutMs: 10_000, backoffMs: 200 })

/**
 * The hub refused the event for good (a 4xx other than 408 and 429: fix the request), or every
 * attempt failed. `status` is the last HTTP status (0 when none came back), `hubCode` the hub's
 * error code when it sent one.
 */
export class PublishError extends SseError {
  /** The last HTTP status, 0 when no answer came back. */
  override readonly status: number
  /** The hub's error code (`ERR_SSE_...`), when it answered with one. */
  readonly hubCode: string | undefined
  /** How many attempts were made. */
  readonly attempts: number

  constructor(
    message: string,
    details: { status: number; hubCode: string | undefined; attempts: number },
  ) {
    super(ErrorCodes.BAD_RESPONSE, message)
    this.name = 'PublishError'
    this.status = details.status
    this.hubCode = details.hubCode
    this.attempts = details.attempts
  }
}

/** Statuses worth sending again with the same key: the hub may take the event later. */
const RETRYABLE = new Set([408, 429, 500, 502, 503, 504])

/**
 * Publishes `event` through the hub server's `POST /publish`, retrying what may succeed later
 * with one idempotency key. Resolves with the hub's answer (`duplicate` when a retry found the
 * event already published).
 * @throws {PublishError} when the hub refuses the event for good, or after the last attempt.
 */
export async function publish(event: PublishEvent, options: PublishOptions): Promise<Published> {
  const attempts = options.attempts ?? PUBLISH_DEFAULTS.attempts
  const timeoutMs = options.timeoutMs ?? PUBLISH_DEFAULTS.timeoutMs
  const backoffMs = options.backoffMs ?? PUBLISH_DEFAULTS.backoffMs
  if (!Number.isInteger(attempts) || attempts < 1)
    throw new RangeError(`Expected \`attempts\` to be a positive integer, got ${attempts}`)
  const doFetch = options.fetch ?? fetch
  const url = new URL('/publish', options.hub)
  const idempotencyKey = options.idempotencyKey ?? crypto.randomUUID()
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'idempotency-key': idempotencyKey,
  }
  if (options.key !== undefined && options.key !== '')
    headers.authorization = `Bearer ${options.key}`
  const body = JSON.stringify(event)
  let status: number
  let hubCode: string | undefined
  let reason: string
  for (let attempt = 1; ; attempt++) {
    options.signal?.throwIfAborted()
    let retryAfterMs: number | undefined
    try {
      const signal = AbortSignal.any([
        AbortSignal.timeout(timeoutMs),
        ...(options.signal === undefined ? [] : [options.signal]),
      ])
      const response = await doFetch(url, { method: 'POST', headers, body, signal })
      status = response.status
      const text = await response.text()
      const json = parseJson(text)
      if (response.ok && typeof json?.id === 'string') return json as unknown as Published
      hubCode = typeof json?.error?.code === 'string' ? json.error.code : undefined
      reason = `hub answered ${status}: ${json?.error?.message ?? text.slice(0, 200)}`
      if (!RETRYABLE.has(status)) {
        throw new PublishError(reason, {
          status,
          hubCode,
          attempts: attempt,
        })
      }
      const after = Number(response.headers.get('retry-after'))
      if (Number.isFinite(after) && after >= 0) retryAfterMs = Math.min(after * 1000, 30_000)
    } catch (error) {
      if (error instanceof PublishError) throw error
      if (options.signal?.aborted === true) throw options.signal.reason
      // No answer: the event may or may not have landed. The same key makes a retry safe.
      status = 0
      reason =
        error instanceof Error && error.name === 'TimeoutError'
          ? `no answer within ${timeoutMs} ms`
          : `cannot reach ${url.href}: ${networkCause(error)}`
    }
    if (attempt >= attempts) {
      throw new PublishError(attempt === 1 ? reason : `${reason} (after ${attempt} attempts)`, {
        status,
        hubCode,
        attempts: attempt,
      })
    }
    const backoff = Math.min(backoffMs * 2 ** (attempt - 1), 5_000)
    const delayMs = retryAfterMs ?? Math.round(backoff / 2 + Math.random() * (backoff / 2))
    options.onRetry?.({ attempt, delayMs, reason })
    await sleep(delayMs, options.signal)
  }
}

interface HubAnswer {
  id?: unknown
  error?: { code?: unknown; message?: string }
}

function parseJson(text: string): HubAnswer | undefined {
  try {
    const value = JSON.parse(text) as unknown
    return typeof value === 'object' && value !== null ? value : undefined
  } catch {
    return undefined // not JSON: reported with the status and the text
  }
}

/**
 * What went wrong under fetch's bare "fetch failed": the cause's code and address
 * (`ECONNREFUSED 127.0.0.1:8080`, `ENOTFOUND hub.example`), each address of a multi-address
 * attempt (an AggregateError), or the cause's message.
 */
export function networkCause(error: unknown): string {
  const cause = (error as { cause?: unknown }).cause
  if (typeof cause !== 'object' || cause === null) return (error as Error).message
  const errors = (cause as { errors?: unknown }).errors
  if (Array.isArray(errors) && errors.length > 0) {
    const each = (errors as unknown[]).map((inner) => networkCause({ cause: inner }))
    return [...new Set(each)].join(', ')
  }
  const code = (cause as { code?: unknown }).code
  const message = (cause as { message?: unknown }).message
  const text = typeof message === 'string' ? message.trim() : ''
  if (typeof code !== 'string' || code === '') return text === '' ? (error as Error).message : text
  // Node writes `connect ECONNREFUSED 127.0.0.1:8080`: from the code on is the useful part.
  const at = text.indexOf(code)
  if (at !== -1) return text.slice(at)
  return text === '' ? code : `${code} ${text}`
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = (): void => {
      clearTimeout(timer)
      const reason: unknown = signal!.reason
      reject(reason instanceof Error ? reason : new Error(String(reason)))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}
