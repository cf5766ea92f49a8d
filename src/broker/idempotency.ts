/**
 * What brokers share for idempotent publishing: the fingerprint that tells a retry (the same
 * event again) from a different event sent under a used key, and the refusal of the latter.
 */
import { createHash } from 'node:crypto'
import { ErrorCodes, SseError } from '../errors.js'
import type { Publication, PublishRequest } from './broker.js'

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

/**
 * The idempotency keys one process remembers (the memory and durable brokers): each key's first
 * publication (or the promise of it, while a durable write is under way) and its fingerprint,
 * oldest first. Bounded by a window and a count: the oldest are forgotten first.
 */
export class IdempotencyWindow<P extends Publication> {
  private readonly keys = new Map<
    string,
    { readonly fingerprint: string; readonly at: number; result: P | Promise<P> }
  >()

  constructor(
    private readonly windowMs: number,
    private readonly maxKeys: number,
  ) {}

  /** Keys remembered now. */
  get size(): number {
    return this.keys.size
  }

  /**
   * The first publish under `key` as a duplicate (or its promise), `null` when the key is new.
   * @throws {SseError} `ERR_SSE_CONFLICT` when the key was used for a different event.
   */
  check(key: string, fingerprint: string, now: number): Publication | Promise<Publication> | null {
    // Oldest first: the expired keys are at the front (amortised O(1) per keyed publish).
    for (const [old, entry] of this.keys) {
      if (now - entry.at < this.windowMs) break
      this.keys.delete(old)
    }
    const entry = this.keys.get(key)
    if (entry === undefined) return null
    if (entry.fingerprint !== fingerprint) throw idempotencyConflict(key)
    const { result } = entry
    return result instanceof Promise
      ? result.then((publication) => asDuplicate(publication))
      : asDuplicate(result)
  }

  /** Remembers `key`'s first publish (a promise while it is being made durable). */
  remember(key: string, fingerprint: string, result: P | Promise<P>, at: number): void {
    const entry = { fingerprint, at, result }
    this.keys.set(key, entry)
    if (this.keys.size > this.maxKeys) this.keys.delete(this.keys.keys().next().value!)
    if (result instanceof Promise) {
      // Settled: keep the publication; failed: the key was never used (a retry publishes).
      result.then(
        (publication) => {
          if (this.keys.get(key) === entry) entry.result = publication
        },
        () => {
          if (this.keys.get(key) === entry) this.keys.delete(key)
        },
      )
    }
  }
}

function asDuplicate(publication: Publication): Publication {
  return { ...publication, duplicate: true }
}
