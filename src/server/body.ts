import type { IncomingMessage } from 'node:http'
import { ErrorCodes, SseError } from '../errors.js'
import type { PublishInput } from '../hub/types.js'
import { PUBLISH_FIELDS, unknownPublishField } from '../hub/publish-input.js'
import { didYouMean } from '../closest.js'
import type { RelayStartRequest } from '../relay/relays.js'

/**
 * Reads a request body up to `maxBytes`. Past the limit it stops reading and rejects with a 413
 * error, so a huge body never sits in memory.
 */
export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'])
  if (Number.isFinite(declared) && declared > maxBytes) {
    return Promise.reject(tooLarge(maxBytes))
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (chunk: Buffer): void => {
      size += chunk.length
      if (size > maxBytes) {
        cleanup()
        // Drain the rest without keeping it, so the 413 can still be written on this socket.
        req.resume()
        reject(tooLarge(maxBytes))
        return
      }
      chunks.push(chunk)
    }
    const onEnd = (): void => {
      cleanup()
      resolve(Buffer.concat(chunks, size))
    }
    const onError = (error: Error): void => {
      cleanup()
      reject(
        new SseError(ErrorCodes.BAD_REQUEST, 'The request body could not be read.', {
          cause: error,
        }),
      )
    }
    const cleanup = (): void => {
      req.off('data', onData)
      req.off('end', onEnd)
      req.off('error', onError)
    }
    req.on('data', onData)
    req.on('end', onEnd)
    req.on('error', onError)
  })
}

function tooLarge(maxBytes: number): SseError {
  return new SseError(
    ErrorCodes.BODY_TOO_LARGE,
    `The body is larger than ${maxBytes} bytes (maxBytes); send a smaller event or raise --max-body-bytes.`,
  )
}

/** A JSON body (415 for another type, 400 when it does not parse), for `what`, like `example`. */
function jsonBody(
  contentType: string | undefined,
  body: Buffer,
  what: string,
  example: string,
): unknown {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (type !== 'application/json' && !type.endsWith('+json')) {
    throw new SseError(
      ErrorCodes.UNSUPPORTED_MEDIA_TYPE,
      `Send ${what} as application/json, got ${JSON.stringify(contentType ?? 'none')}.`,
    )
  }
  try {
    return JSON.parse(body.toString('utf8'))
  } catch (error) {
    throw badRequest(
      `The body is not valid JSON (${(error as Error).message}). Example: ${example}.`,
    )
  }
}

const RELAY_FIELDS = ['id', 'upstream', 'body']
const RELAY_EXAMPLE =
  '{"id":"req-1","upstream":"default","body":{"messages":[{"role":"user","content":"Hi"}]}}'

/**
 * The body of `POST /relays`: `{ id, upstream, body? }` as JSON; an unknown field is a 400 naming
 * the closest valid one. (The relays check the values.)
 */
export function parseRelayStartBody(
  contentType: string | undefined,
  body: Buffer,
): RelayStartRequest {
  const value = jsonBody(contentType, body, 'a relay start', RELAY_EXAMPLE)
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw badRequest(`The JSON body must be an object, e.g. ${RELAY_EXAMPLE}.`)
  for (const field of Object.keys(value)) {
    if (!RELAY_FIELDS.includes(field))
      throw badRequest(
        `Unknown field ${JSON.stringify(field)}${didYouMean(field, RELAY_FIELDS, (name) => `\`${name}\``)}; a relay start has ${RELAY_FIELDS.map((name) => `\`${name}\``).join(', ')}.`,
      )
  }
  return value as RelayStartRequest
}

function badRequest(message: string): SseError {
  return new SseError(ErrorCodes.BAD_REQUEST, message)
}

const truthy = new Set(['true', '1', 'yes', 'on', ''])
const falsy = new Set(['false', '0', 'no', 'off'])

function formBoolean(name: string, value: string | null): boolean | undefined {
  if (value === null) return undefined
  if (truthy.has(value)) return true
  if (falsy.has(value)) return false
  throw badRequest(`\`${name}\` must be true or false, got ${JSON.stringify(value)}.`)
}

/**
 * Parses a batch body (`POST /publish/batch`): a JSON array of 1 to `maxEvents` publish objects.
 * Field checks are the hub's (`publishMany`).
 */
export function parseBatchBody(
  contentType: string | undefined,
  body: Buffer,
  maxEvents: number,
): PublishInput[] {
  const value = jsonBody(
    contentType,
    body,
    'a batch',
    '[{"topic":"a","data":1},{"clientId":"u1","data":2}]',
  )
  if (!Array.isArray(value) || value.length === 0) {
    throw badRequest(
      'A batch is a non-empty JSON array of publish objects, e.g. [{"topic":"a","data":1}].',
    )
  }
  if (value.length > maxEvents) {
    throw badRequest(
      `A batch may hold at most ${maxEvents} events (maxBatchEvents), got ${value.length}; split it.`,
    )
  }
  for (const [index, item] of value.entries()) {
    if (typeof item !== 'object' || item === null || Array.isArray(item))
      throw badRequest(`events[${index}] must be an object, e.g. {"topic":"a","data":1}.`)
  }
  return value as PublishInput[]
}

/**
 * Parses a publish body: JSON (`application/json`) or a form (`application/x-www-form-urlencoded`,
 * what `curl -d` sends) with the same fields. Type checks of the fields are the hub's.
 */
export function parsePublishBody(contentType: string | undefined, body: Buffer): PublishInput {
  const type = (contentType ?? '').split(';')[0]!.trim().toLowerCase()
  if (type === 'application/json' || type.endsWith('+json')) {
    let value: unknown
    try {
      value = JSON.parse(body.toString('utf8'))
    } catch (error) {
      throw new SseError(
        ErrorCodes.BAD_REQUEST,
        `The body is not valid JSON (${(error as Error).message}). Example: {"topic":"news","data":"hello"}.`,
      )
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw badRequest('The JSON body must be an object, e.g. {"topic":"news","data":"hello"}.')
    }
    return value as PublishInput
  }
  if (type === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(body.toString('utf8'))
    // The hub refuses unknown fields of an object; a form's are dropped below, so check them here.
    for (const field of form.keys())
      if (!PUBLISH_FIELDS.has(field)) throw unknownPublishField(field)
    const topics = form.getAll('topic')
    const clientId = form.get('clientId')
    const event = form.get('event')
    const retry = form.get('retry')
    const all = formBoolean('all', form.get('all'))
    const close = formBoolean('close', form.get('close'))
    const idempotencyKey = form.get('idempotencyKey')
    if (retry !== null && !/^[0-9]{1,15}$/.test(retry)) {
      throw badRequest(
        `\`retry\` must be a non-negative integer (milliseconds), got ${JSON.stringify(retry)}.`,
      )
    }
    const data = form.get('data')
    return {
      ...(topics.length === 0 ? {} : { topic: topics.length === 1 ? topics[0]! : topics }),
      ...(clientId === null ? {} : { clientId }),
      ...(all === undefined ? {} : { all }),
      ...(event === null ? {} : { event }),
      ...(retry === null ? {} : { retry: Number(retry) }),
      ...(close === undefined ? {} : { close }),
      ...(idempotencyKey === null ? {} : { idempotencyKey }),
      data: data ?? undefined,
    }
  }
  throw new SseError(
    ErrorCodes.UNSUPPORTED_MEDIA_TYPE,
    `Send the body as application/json or application/x-www-form-urlencoded, got ${JSON.stringify(contentType ?? 'none')}.`,
  )
}
