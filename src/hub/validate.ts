import type { StartFrom } from '../broker/broker.js'
import { ErrorCodes, SseError } from '../errors.js'

/** Limits on names, checked at subscribe and publish. */
export interface NameLimits {
  readonly maxTopicLength: number
  readonly maxClientIdLength: number
  readonly maxEventNameLength: number
}

function bad(
  message: string,
  code: typeof ErrorCodes.BAD_REQUEST | typeof ErrorCodes.INVALID_FIELD = ErrorCodes.BAD_REQUEST,
): SseError {
  return new SseError(code, message)
}

// Control characters could inject SSE fields where names are echoed (reset events) or break logs.
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const controlChars = /[\u0000-\u001f\u007f]/

function checkName(kind: string, value: unknown, max: number, hint: string): string {
  if (typeof value !== 'string') {
    throw bad(
      `\`${kind}\` must be a string, got ${value === null ? 'null' : typeof value}. ${hint}`,
    )
  }
  if (value.length === 0) throw bad(`\`${kind}\` must not be empty. ${hint}`)
  if (value.length > max) {
    throw bad(
      `\`${kind}\` is ${value.length} characters long; the limit is ${max}. Use a shorter name.`,
    )
  }
  if (controlChars.test(value)) {
    throw bad(
      `\`${kind}\` must not contain control characters (CR, LF, NUL...), got ${JSON.stringify(value)}.`,
      ErrorCodes.INVALID_FIELD,
    )
  }
  return value
}

/** Validates a topic name: a non-empty string without control characters, not starting with `@`. */
export function validateTopic(value: unknown, limits: NameLimits): string {
  const topic = checkName('topic', value, limits.maxTopicLength, 'Example: "news" or "orders/42".')
  if (topic.startsWith('@')) {
    throw bad(
      `Topic names starting with "@" are reserved for the hub, got ${JSON.stringify(topic)}.`,
    )
  }
  return topic
}

/** Validates a client id. */
export function validateClientId(value: unknown, limits: NameLimits): string {
  return checkName('clientId', value, limits.maxClientIdLength, 'Example: "user-42".')
}

/** Validates an event type name; `ssehub.*` names are reserved for the hub's own events. */
export function validateEventName(value: unknown, limits: NameLimits): string {
  const name = checkName('event', value, limits.maxEventNameLength, 'Example: "progress".')
  if (name.startsWith('ssehub.')) {
    throw bad(
      `Event names starting with "ssehub." are reserved for the hub, got ${JSON.stringify(name)}.`,
    )
  }
  return name
}

/** Validates a `retry` delay: a non-negative integer of ms. */
export function validateRetry(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw bad(
      `\`retry\` must be a non-negative integer (milliseconds), got ${JSON.stringify(value) ?? typeof value}.`,
    )
  }
  return value
}

/** The limits a subscription is checked against. */
export interface SubscribeLimits extends NameLimits {
  /** Topics one connection may follow. */
  readonly maxTopicsPerConnection: number
}

/**
 * Checks what a connection asks to follow: valid, distinct topic names (at most
 * `maxTopicsPerConnection`) and a valid client id, at least one of the two.
 * @throws {SseError} `ERR_SSE_BAD_REQUEST` or `ERR_SSE_INVALID_FIELD`, saying what to fix.
 */
export function checkSubscription(
  topics: readonly unknown[] | undefined,
  clientId: unknown,
  limits: SubscribeLimits,
): { topics: string[]; clientId: string | undefined } {
  const checked = [...new Set((topics ?? []).map((topic) => validateTopic(topic, limits)))]
  const id = clientId === undefined ? undefined : validateClientId(clientId, limits)
  if (checked.length === 0 && id === undefined) {
    throw bad(
      'Give at least one topic or a client id, e.g. /events?topic=news or /events?clientId=user-42.',
    )
  }
  if (checked.length > limits.maxTopicsPerConnection) {
    throw bad(
      `A connection may follow at most ${limits.maxTopicsPerConnection} topics, got ${checked.length}; open several connections or raise maxTopicsPerConnection.`,
    )
  }
  return { topics: checked, clientId: id }
}

/** The largest count `from` may ask for (the default history holds 10,000 events). */
export const MAX_FROM_EVENTS = 10_000

/**
 * Where a new subscription starts: `start`, `newest`, or a count from 1 to
 * {@link MAX_FROM_EVENTS} (a number, or its digits from a query); `undefined` for none.
 * @throws {SseError} `ERR_SSE_INVALID_FIELD` otherwise, saying what it takes.
 */
export function validateStartFrom(value: unknown): StartFrom | undefined {
  if (value === undefined) return undefined
  if (value === 'start' || value === 'newest') return value
  const count = typeof value === 'string' && /^\d{1,6}$/.test(value) ? Number(value) : value
  if (
    typeof count === 'number' &&
    Number.isInteger(count) &&
    count >= 1 &&
    count <= MAX_FROM_EVENTS
  )
    return count
  throw new SseError(
    ErrorCodes.INVALID_FIELD,
    `\`from\` takes 'start' (every event the history holds), 'newest' (the latest of each topic) or a count from 1 to ${MAX_FROM_EVENTS} (the last N), got ${JSON.stringify(value)}.`,
  )
}
