/**
 * The Redis broker's publish batching: every publish (and command) of one turn of the event loop
 * travels to Redis in one script call, in the order they were made, and each caller gets its own
 * outcome. A turn's publishes cost one round trip, one timer and one reply instead of one each,
 * and the entries they append are read back together, so the hub writes them to each connection
 * in one socket write, as it does with the memory broker.
 */
import { createHash } from 'node:crypto'
import type { RedisClient } from './redis-client.js'
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

/**
 * Where a {@link PublishBatcher} sends a batch: one round trip, one result per append, in order.
 * `timeoutMs` is what is left of the publish timeout of the batch's oldest append.
 */
export type SendBatch = (appends: readonly Append[], timeoutMs: number) => Promise<AppendResult[]>

/**
 * Group commit, pipelined: appends queue while a batch is being built, and go together, in the
 * order they were made, in the next batch, sent in the event loop's check phase (`setImmediate`).
 * Up to `maxInFlight` batches travel at once (Redis runs the commands of one connection in the
 * order they were sent, so order holds across batches); a turn's appends wait for the next
 * free slot, so under load a batch carries whatever arrived during a round trip and the node
 * never sits idle waiting for one round trip while publishers wait for the next. When idle, an
 * append goes in the turn it was made. A queue that reaches `maxEvents` is sent at once, a slot
 * free or not.
 *
 * Bounds: a batch holds at most `maxEvents` appends, at most `maxInFlight` batches are in flight
 * (plus full ones), the queue is bounded by the publishes the server admits, and each append
 * fails once `timeoutMs` passed since it was queued.
 */
export class PublishBatcher {
  private queue: Waiting[] = []
  /** When the oldest queued append was queued (its timeout counts from then). */
  private queuedAt = 0
  /** The batches on their way to Redis, each settled (never rejected) when its answer came. */
  private readonly inFlight = new Set<Promise<void>>()
  /** Settles with the queued batch (created with its first append). */
  private queueSettled: Deferred | null = null
  private scheduled = false
  /** When the last append was made (`performance.now()`; never: -Infinity). */
  lastAppendAt = Number.NEGATIVE_INFINITY
  /** The waiter of {@link PublishBatcher.nextAppend}. */
  private onAppend: (() => void) | null = null

  constructor(
    private readonly send: SendBatch,
    private readonly maxEvents: number,
    private readonly timeoutMs: number,
    private readonly maxInFlight = 1,
  ) {}

  /**
   * Settles once every append made so far has its answer (whatever it is); `null` when none is
   * waiting. The reader uses it to deliver this node's own appends together with what it read
   * (see `RedisBroker`'s read coalescing).
   */
  answered(): Promise<void> | null {
    if (this.inFlight.size === 0 && this.queueSettled === null) return null
    const all = [...this.inFlight]
    if (this.queueSettled !== null) all.push(this.queueSettled.promise)
    return all.length === 1 ? all[0]! : Promise.all(all).then(() => {})
  }

  /**
   * Resolves at the next append, or after `timeoutMs` (whichever first). One waiter at a time
   * (the reader): a second call replaces the first's wake-up by its own.
   */
  nextAppend(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(wake, timeoutMs)
      function wake(): void {
        clearTimeout(timer)
        resolve()
      }
      this.onAppend?.()
      this.onAppend = wake
    })
  }

  /** Queues `append` for the next batch; resolves with its own result, or rejects with the batch's error. */
  add(append: Append): Promise<AppendResult> {
    this.lastAppendAt = performance.now()
    const onAppend = this.onAppend
    if (onAppend !== null) {
      this.onAppend = null
      onAppend()
    }
    return new Promise((resolve, reject) => {
      if (this.queue.length === 0) {
        this.queuedAt = performance.now()
        this.queueSettled = deferred()
      }
      this.queue.push({ append, resolve, reject })
      if (this.queue.length >= this.maxEvents) this.flush()
      else this.schedule()
    })
  }

  private schedule(): void {
    if (this.scheduled || this.inFlight.size >= this.maxInFlight || this.queue.length === 0) return
    this.scheduled = true
    setImmediate(this.flushScheduled)
  }

  private readonly flushScheduled = (): void => {
    this.scheduled = false
    if (this.inFlight.size < this.maxInFlight) this.flush()
  }

  /** Sends what is queued (nothing when empty). */
  private flush(): void {
    const batch = this.queue
    const settled = this.queueSettled
    if (batch.length === 0 || settled === null) return
    this.queue = []
    this.queueSettled = null
    const left = Math.max(1, Math.round(this.timeoutMs - (performance.now() - this.queuedAt)))
    let sent: Promise<AppendResult[]>
    try {
      sent = this.send(
        batch.map((waiting) => waiting.append),
        left,
      )
    } catch (error) {
      sent = Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
    const done = sent
      .then(
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
      .catch(() => {}) // settled either way: the callers heard of the failure above
      .finally(() => {
        this.inFlight.delete(done)
        settled.resolve()
        this.schedule()
      })
    this.inFlight.add(done)
  }
}

/** A promise and the function that resolves it. */
export interface Deferred {
  readonly promise: Promise<void>
  readonly resolve: () => void
}

/** A new {@link Deferred}. */
export function deferred(): Deferred {
  let resolve = (): void => {}
  const promise = new Promise<void>((done) => (resolve = done))
  return { promise, resolve }
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
  readonly client: RedisClient
  readonly logKey: string
  readonly metaKey: string
  /** This broker's read cursor: what its batches' answers read back starts after it. */
  readonly cursorKey: string
  readonly maxEvents: number
  readonly maxAgeMs: number | null
  readonly endedTtlMs: number
  readonly idempotencyWindowMs: number
  /** Most entries one answer reads back. */
  readonly readCount: number
  /** How long the read cursor outlives the node's last batch, in ms. */
  readonly cursorTtlMs: number
  /** A new epoch candidate (used when Redis lost the meta hash). */
  readonly newEpoch: () => string
  /** Where to read back from when the cursor expired (the node's position); `null`: read nothing. */
  readonly readFrom: () => string | null
}

/**
 * What a batch's answer read back: the entries after `from` (this node's read cursor), in log
 * order: another node's as its fields, one of the batch itself as its number `n` only (the node
 * has its fields).
 */
export interface ReadBack {
  readonly epoch: string
  readonly from: string
  readonly entries: readonly (readonly [id: string, fieldsOrN: readonly string[] | string])[]
}

/** A batch's answer: one result per append, and what it read back (`null` when not asked). */
export interface BatchAnswer {
  readonly results: AppendResult[]
  readonly read: ReadBack | null
}

/**
 * Runs the publish script on `appends` (see {@link publishBatchScript} for its arguments):
 * `EVALSHA`, and `EVAL` (which loads it) when Redis does not have it yet or lost it in a restart.
 * Rejects when Redis has not answered within `timeoutMs`.
 */
export async function runPublishBatch(
  context: BatchScriptContext,
  appends: readonly Append[],
  timeoutMs: number,
): Promise<BatchAnswer> {
  const keys: string[] = [context.logKey, context.metaKey, context.cursorKey]
  const args: string[] = [
    String(context.maxEvents),
    context.newEpoch(),
    context.maxAgeMs === null ? '' : `${Date.now() - context.maxAgeMs}-0`,
    String(context.endedTtlMs),
    String(context.idempotencyWindowMs),
    String(appends.length),
    context.readFrom() ?? '',
    String(context.readCount),
    String(context.cursorTtlMs),
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
  const reply = await withTimeout(run(), timeoutMs, 'Redis did not confirm the publish in time.')
  return toAnswer(reply, appends.length)
}

/** `[epoch, id1, outcome1, id2, outcome2..., read]` to one result per append and the read. */
function toAnswer(reply: unknown, count: number): BatchAnswer {
  if (!Array.isArray(reply) || reply.length !== 2 + 2 * count)
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
  const raw = reply[1 + 2 * count] as unknown[]
  if (!Array.isArray(raw) || raw.length === 0) return { results, read: null }
  // `{id, n}` or `{id, fields}`, as the script wrote them.
  const entries = raw.slice(1) as [string, string[] | string][]
  return { results, read: { epoch, from: String(raw[0]), entries } }
}
