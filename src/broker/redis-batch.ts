/**
 * The Redis broker's publish batching: every publish (and command) of one turn of the event loop
 * travels to Redis in one script call, in the order they were made, and each caller gets its own
 * outcome. A turn's publishes cost one round trip, one timer and one reply instead of one each,
 * and the entries they append are read back together, so the hub writes them to each connection
 * in one socket write, as it does with the memory broker.
 */
import { createHash } from 'node:crypto'
import type { Redis } from 'ioredis'
import { ErrorCodes, SseError } from '../errors.js'
import { publishBatchScript, withTimeout } from './redis-log.js'

/** One entry to append: what the publish script needs of a publish or a command. */
export interface Append {
  /** The `end:` keys of its topics (already prefixed): a finished topic is tracked under each. */
  readonly endKeys: readonly string[]
  /** The last event of its topics. */
  readonly close: boolean
  /** The entry's field/value pairs (the script prepends `n`). */
  readonly fields: readonly string[]
  /** The idempotency key (prefixed) and the request's fingerprint, or `null` without a key. */
  readonly once: { readonly key: string; readonly fingerprint: string } | null
}

/** What Redis made of one {@link Append}: its entry id, the epoch, and a used key's outcome. */
export type AppendResult = [id: string, epoch: string, outcome?: 'duplicate' | 'conflict']

interface Waiting {
  readonly append: Append
  readonly resolve: (result: AppendResult) => void
  readonly reject: (error: Error) => void
}

/** Where a {@link PublishBatcher} sends a batch: one round trip, one result per append, in order. */
export type SendBatch = (appends: readonly Append[]) => Promise<AppendResult[]>

/**
 * Collects appends until the event loop's check phase (`setImmediate`), then sends them as one
 * batch; a batch that reaches `maxEvents` is sent at once and the next one starts. Batches are
 * sent in order on one connection, so Redis appends them in the order the appends were made.
 * Bounds: a batch holds at most `maxEvents` appends; batches in flight are bounded by the
 * publishes the server admits, each for at most the publish timeout.
 */
export class PublishBatcher {
  private batch: Waiting[] = []
  private scheduled = false

  constructor(
    private readonly send: SendBatch,
    private readonly maxEvents: number,
  ) {}

  /** Queues `append` for this turn's batch; resolves with its own result, or rejects with the batch's error. */
  add(append: Append): Promise<AppendResult> {
    return new Promise((resolve, reject) => {
      this.batch.push({ append, resolve, reject })
      if (this.batch.length >= this.maxEvents) this.flush()
      else if (!this.scheduled) {
        this.scheduled = true
        setImmediate(this.flushScheduled)
      }
    })
  }

  private readonly flushScheduled = (): void => {
    this.scheduled = false
    this.flush()
  }

  /** Sends what is queued (nothing when empty). */
  private flush(): void {
    const batch = this.batch
    if (batch.length === 0) return
    this.batch = []
    this.send(batch.map((waiting) => waiting.append)).then(
      (results) => {
        for (let i = 0; i < batch.length; i++) {
          const result = results[i]
          if (result !== undefined) batch[i]!.resolve(result)
          else batch[i]!.reject(new Error('Redis answered fewer results than the batch held.'))
        }
      },
      (error: unknown) => {
        // One failure for every caller of the batch: none of them knows whether its event was
        // appended (a timeout may come after Redis did it), as with a single publish.
        const cause = error instanceof Error ? error : new Error(String(error))
        for (const waiting of batch) waiting.reject(unavailable(cause))
      },
    )
  }
}

/** `ERR_SSE_BROKER_UNAVAILABLE` for a batch Redis did not take; `cause` says why. */
function unavailable(cause: Error): SseError {
  return new SseError(
    ErrorCodes.BROKER_UNAVAILABLE,
    `Redis did not take the event (${cause.message}); retry later.`,
    { cause },
  )
}

/** The SHA1 of the publish script: it runs by `EVALSHA` once Redis has it. */
const publishBatchSha = createHash('sha1').update(publishBatchScript).digest('hex')

/** The prefix-derived keys and bounds every batch of one broker shares. */
export interface BatchScriptContext {
  readonly client: Redis
  readonly logKey: string
  readonly metaKey: string
  readonly maxEvents: number
  readonly maxAgeMs: number | null
  readonly endedTtlMs: number
  readonly idempotencyWindowMs: number
  readonly publishTimeoutMs: number
  /** A new epoch candidate (used when Redis lost the meta hash). */
  readonly newEpoch: () => string
}

/**
 * Runs the publish script on `appends` (see {@link publishBatchScript} for its arguments):
 * `EVALSHA`, and `EVAL` (which loads it) when Redis does not have it yet or lost it in a restart.
 * Rejects when Redis has not answered within the publish timeout.
 */
export async function runPublishBatch(
  context: BatchScriptContext,
  appends: readonly Append[],
): Promise<AppendResult[]> {
  const keys: string[] = [context.logKey, context.metaKey]
  const args: string[] = [
    String(context.maxEvents),
    context.newEpoch(),
    context.maxAgeMs === null ? '' : `${Date.now() - context.maxAgeMs}-0`,
    String(context.endedTtlMs),
    String(context.idempotencyWindowMs),
    String(appends.length),
  ]
  for (const append of appends) {
    if (append.once !== null) keys.push(append.once.key)
    keys.push(...append.endKeys)
    args.push(
      append.close ? '1' : '0',
      append.once?.fingerprint ?? '',
      String(append.endKeys.length),
      String(append.fields.length),
      ...append.fields,
    )
  }
  const run = async (): Promise<unknown> => {
    try {
      return await context.client.evalsha(publishBatchSha, keys.length, ...keys, ...args)
    } catch (error) {
      if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
      return context.client.eval(publishBatchScript, keys.length, ...keys, ...args)
    }
  }
  const reply = await withTimeout(
    run(),
    context.publishTimeoutMs,
    'Redis did not confirm the publish in time.',
  )
  return toResults(reply, appends.length)
}

/** `[epoch, id1, outcome1, id2, outcome2...]` to one result per append. */
function toResults(reply: unknown, count: number): AppendResult[] {
  if (!Array.isArray(reply) || reply.length !== 1 + 2 * count)
    throw new Error('Redis answered the publish script with an unexpected reply.')
  const epoch = String(reply[0])
  const results: AppendResult[] = []
  for (let i = 0; i < count; i++) {
    const id = String(reply[1 + 2 * i])
    const outcome = String(reply[2 + 2 * i])
    results.push(
      outcome === 'duplicate' || outcome === 'conflict' ? [id, epoch, outcome] : [id, epoch],
    )
  }
  return results
}
