/**
 * The check of a publish input: from what an application or an HTTP body hands the hub to the
 * routing keys and strings a broker takes. It runs once per publish, so it builds its result field
 * by field (no spreads, no closures).
 */
import { didYouMean } from '../closest.js'
import { dataToString } from '../connection/connection.js'
import { ErrorCodes, SseError, isSseError } from '../errors.js'
import { ALL_KEY, CLIENT_PREFIX } from './member.js'
import type { PublishInput } from './types.js'
import { validateClientId, validateEventName, validateRetry, validateTopic } from './validate.js'
import type { NameLimits } from './validate.js'

/** A checked publish input, as the broker takes it. */
export interface PublishRequest {
  /** Routing keys, distinct: topics, `@c/<clientId>`, `@all`. */
  keys: string[]
  /** The payload as sent. */
  data: string
  /** Event type name. */
  event?: string
  /** Reconnection delay, in ms. */
  retry?: number
  /** The last event of its topics. */
  close?: boolean
  /** Publish at most once per key within the broker's idempotency window. */
  idempotencyKey?: string
}

/** The limits a publish input is checked against. */
export interface PublishLimits extends NameLimits {
  /** Topics one publish may target. */
  readonly maxTopicsPerPublish: number
}

function bad(message: string): SseError {
  return new SseError(ErrorCodes.BAD_REQUEST, message)
}

/** The fields of a publish input: any other is a typo, refused with the closest of these. */
export const PUBLISH_FIELDS: ReadonlySet<string> = new Set([
  'topic',
  'clientId',
  'all',
  'event',
  'data',
  'retry',
  'close',
  'idempotencyKey',
])

/** The 400 for a field a publish input does not have, naming the closest one it does. */
export function unknownPublishField(name: string): SseError {
  const hint = didYouMean(name, PUBLISH_FIELDS, (field) => `\`${field}\``)
  return bad(
    `unknown field \`${name}\`${hint === '' ? `; the fields are ${[...PUBLISH_FIELDS].join(', ')}.` : hint}`,
  )
}

/**
 * Checks `input` and turns its target into routing keys.
 * @throws {SseError} `ERR_SSE_BAD_REQUEST` or `ERR_SSE_INVALID_FIELD`, saying what to fix.
 */
export function toPublishRequest(input: PublishInput, limits: PublishLimits): PublishRequest {
  if (typeof input !== 'object' || input === null)
    throw bad('The publish body must be a JSON object.')
  for (const field in input) if (!PUBLISH_FIELDS.has(field)) throw unknownPublishField(field)
  const keys: string[] = []
  if (input.topic !== undefined) {
    const topics = typeof input.topic === 'string' ? [input.topic] : input.topic
    if (!Array.isArray(topics)) throw bad('`topic` must be a string or an array of strings.')
    if (topics.length > limits.maxTopicsPerPublish) {
      throw bad(
        `A publish may target at most ${limits.maxTopicsPerPublish} topics, got ${topics.length}.`,
      )
    }
    for (const topic of topics as unknown[]) keys.push(validateTopic(topic, limits))
  }
  if (input.clientId !== undefined)
    keys.push(CLIENT_PREFIX + validateClientId(input.clientId, limits))
  if (input.all !== undefined && typeof input.all !== 'boolean')
    throw bad('`all` must be true or false.')
  if (input.all === true) keys.push(ALL_KEY)
  if (keys.length === 0) {
    throw bad('Give a target: `topic` (a string or an array), `clientId`, or `all: true`.')
  }
  if (!('data' in input) || input.data === undefined) {
    throw bad('`data` is required: a string is sent as is, any other JSON value JSON-encoded.')
  }
  if (input.close !== undefined && typeof input.close !== 'boolean')
    throw bad('`close` must be true or false.')
  if (input.close === true && (input.clientId !== undefined || input.all === true)) {
    throw bad(
      '`close: true` ends topics only; to end the connections of a client use DELETE /clients/{clientId}.',
    )
  }
  const request: PublishRequest = {
    keys: keys.length === 1 ? keys : [...new Set(keys)],
    data: encodeData(input.data),
  }
  if (input.event !== undefined) request.event = validateEventName(input.event, limits)
  if (input.retry !== undefined) request.retry = validateRetry(input.retry)
  if (input.close === true) request.close = true
  if (input.idempotencyKey !== undefined)
    request.idempotencyKey = validateIdempotencyKey(input.idempotencyKey)
  return request
}

/** Longest idempotency key, in characters (a UUID is 36; room for a prefix of the app's own). */
export const MAX_IDEMPOTENCY_KEY_LENGTH = 200

const idempotencyKeyPattern = new RegExp(`^[\\x21-\\x7e]{1,${MAX_IDEMPOTENCY_KEY_LENGTH}}$`)

/**
 * An idempotency key: 1 to {@link MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters, no
 * spaces (a UUID per event is the usual choice).
 * @throws {SseError} `ERR_SSE_INVALID_FIELD` otherwise.
 */
export function validateIdempotencyKey(key: unknown): string {
  if (typeof key === 'string' && idempotencyKeyPattern.test(key)) return key
  throw new SseError(
    ErrorCodes.INVALID_FIELD,
    `The idempotency key must be 1 to ${MAX_IDEMPOTENCY_KEY_LENGTH} printable ASCII characters without spaces (a UUID per event), got ${typeof key === 'string' ? JSON.stringify(key.slice(0, 60)) : typeof key}.`,
  )
}

/**
 * The payload as the event's `data`. JSON.stringify recurses: a value nested a hundred thousand
 * deep (which JSON.parse accepts) overflows the stack. That is bad input, not a bug: 400.
 */
function encodeData(data: unknown): string {
  try {
    return dataToString(data)
  } catch (error) {
    if (error instanceof RangeError)
      throw bad('`data` is nested too deeply to encode; send it flatter, or as a string.')
    throw error
  }
}

/**
 * Checks every input of a batch before any is published: one bad input fails the batch, and the
 * error names its index (`events[3]: ...`).
 * @throws {SseError} as {@link toPublishRequest}, prefixed with the index.
 */
export function toPublishRequests(
  inputs: readonly PublishInput[],
  limits: PublishLimits,
): PublishRequest[] {
  return inputs.map((input, index) => {
    try {
      return toPublishRequest(input, limits)
    } catch (error) {
      if (!isSseError(error)) throw error
      throw new SseError(error.code, `events[${index}]: ${error.message}`)
    }
  })
}
