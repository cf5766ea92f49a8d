/**
 * What brokers share for idempotent publishing: the fingerprint that tells a retry (the same
 * event again) from a different event sent under a used key, and the refusal of the latter.
 */
import { createHash } from 'node:crypto'
import { ErrorCodes, SseError } from '../errors.js'
import type { PublishRequest } from './broker.js'

/**
 * A digest of everything a publish sends (targets, event, retry, close, data): equal for a retry
 * of the same event, different for anything else. 22 characters (128 bits of SHA-256).
 */
export function publishFingerprint(request: PublishRequest): string {
  return createHash('sha256')
    .update(request.keys.join('\n'))
    .update(`\0${request.event ?? ''}\0${request.retry ?? ''}\0${request.close === true ? 1 : 0}\0`)
    .update(request.data)
    .digest('base64url')
    .slice(0, 22)
}

/** The refusal of a different event under an idempotency key already used. */
export function idempotencyConflict(key: string): SseError {
  return new SseError(
    ErrorCodes.CONFLICT,
    `Idempotency key ${JSON.stringify(key)} was already used for a different event within the idempotency window; use a new key for each event (a retry must resend the same event).`,
  )
}
