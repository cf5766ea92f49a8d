import { optionsObject, positiveInteger, positiveIntegerOption, withDefault } from '../options.js'
import { idempotencyConflict, publishFingerprint } from './idempotency.js'
import type {
  Broker,
  BrokerCommand,
  BrokerHealth,
  BrokerSink,
  Cursor,
  Publication,
  PublishRequest,
  ReplayItem,
  Resume,
  ResetReason,
  StartFrom,
  TopicState,
} from './broker.js'

/** Options of {@link MemoryBroker}. Defaults: {@link MEMORY_BROKER_DEFAULTS}. */
export interface MemoryBrokerOptions {
  /**
   * How many events the history keeps (all topics together). Older ones are dropped; a client
   * whose Last-Event-ID is older than the history gets a reset event.
   * @default 10000
   */
  readonly historyMaxEvents?: number
  /**
   * How long an event stays in the history, in ms (one hour by default). `null` keeps events
   * until the count bound drops them.
   * @default 3600000
   */
  readonly historyMaxAgeMs?: number | null
  /**
   * How long a finished topic (one that got its `close` event) is remembered, in ms (one hour by
   * default): a client that reconnects within it gets the final event or `204`.
   * @default 3600000
   */
  readonly endedTopicTtlMs?: number
  /**
   * How many finished topics are remembered at most; the oldest are forgotten first.
   * @default 10000
   */
  readonly maxEndedTopics?: number
  /**
   * How long an idempotency key is remembered, in ms (one hour by default): a publish retried
   * with its key within it returns the first one's id and publishes nothing.
   * @default 3600000
   */
  readonly idempotencyWindowMs?: number
  /**
   * How many idempotency keys are remembered at most (about 100 bytes each); past it the oldest
   * are forgotten first, even within the window.
   * @default 100000
   */
  readonly maxIdempotencyKeys?: number
  /**
   * The epoch: 1-16 characters of `[0-9a-z]`. A new random one for each broker (so that a restart
   * tells clients their ids are from another log); fix it in tests only.
   */
  readonly epoch?: string
}

/** {@link MemoryBrokerOptions} with every default applied and every value checked. */
export type ResolvedMemoryBrokerOptions = {
  readonly [K in keyof MemoryBrokerOptions]-?: Exclude<MemoryBrokerOptions[K], undefined>
}

/** The default of every {@link MemoryBrokerOptions} field but `epoch` (random per broker). */
export const MEMORY_BROKER_DEFAULTS: Omit<ResolvedMemoryBrokerOptions, 'epoch'> = Object.freeze({
  historyMaxEvents: 10_000,
  historyMaxAgeMs: 3_600_000,
  endedTopicTtlMs: 3_600_000,
  maxEndedTopics: 10_000,
  idempotencyWindowMs: 3_600_000,
  maxIdempotencyKeys: 100_000,
})

const epochPattern = /^[0-9a-z]{1,16}$/

/**
 * Applies {@link MEMORY_BROKER_DEFAULTS} and checks every field; other keys are ignored (the hub's
 * options extend these).
 * @throws {RangeError} naming the first bad option.
 */
export function resolveMemoryBrokerOptions(
  options: MemoryBrokerOptions = {},
): ResolvedMemoryBrokerOptions {
  optionsObject('memory broker', options)
  const defaults = MEMORY_BROKER_DEFAULTS
  const epoch = options.epoch === undefined ? newEpoch() : options.epoch
  if (typeof epoch !== 'string' || !epochPattern.test(epoch)) {
    throw new RangeError(
      `Expected \`epoch\` to be 1-16 chars of [0-9a-z], got \`${String(epoch)}\` (${typeof epoch})`,
    )
  }
  return {
    historyMaxEvents: positiveInteger(
      'historyMaxEvents',
      withDefault(options.historyMaxEvents, defaults.historyMaxEvents),
    ),
    historyMaxAgeMs: positiveIntegerOption(
      'historyMaxAgeMs',
      withDefault(options.historyMaxAgeMs, defaults.historyMaxAgeMs),
      true,
    ),
    endedTopicTtlMs: positiveInteger(
      'endedTopicTtlMs',
      withDefault(options.endedTopicTtlMs, defaults.endedTopicTtlMs),
    ),
    maxEndedTopics: positiveInteger(
      'maxEndedTopics',
      withDefault(options.maxEndedTopics, defaults.maxEndedTopics),
    ),
    idempotencyWindowMs: positiveInteger(
      'idempotencyWindowMs',
      withDefault(options.idempotencyWindowMs, defaults.idempotencyWindowMs),
    ),
    maxIdempotencyKeys: positiveInteger(
      'maxIdempotencyKeys',
      withDefault(options.maxIdempotencyKeys, defaults.maxIdempotencyKeys),
    ),
    epoch,
  }
}

function newEpoch(): string {
  return Math.random().toString(36).slice(2, 10).padEnd(8, '0')
}

interface MemoryPublication extends Publication {
  readonly seq: number
}

const idPattern = /^([0-9a-z]{1,16})-(0|[1-9][0-9]{0,15})$/

/** Ids are `<epoch>-<seq>`: the epoch tells "same log" from "the hub restarted". */
class MemoryCursor implements Cursor {
  constructor(
    private readonly epoch: string,
    private seq: number,
  ) {}

  advance(publication: Publication): string | null {
    const seq = (publication as MemoryPublication).seq
    if (seq <= this.seq) return null
    this.seq = seq
    return publication.id
  }

  get id(): string {
    return `${this.epoch}-${this.seq}`
  }
}

/**
 * The default broker: one process, history in a bounded in-memory ring. Publications are
 * delivered to the hub synchronously inside {@link MemoryBroker.publish}, so they are in order.
 */
export class MemoryBroker implements Broker {
  /** The epoch of this broker's ids; a restart makes a new one, so old ids get a reset. */
  readonly epoch: string
  private readonly maxEvents: number
  private readonly maxAgeMs: number | null
  private readonly endedTtlMs: number
  private readonly maxEnded: number
  private sink: BrokerSink | null = null
  private seq = 0
  // The ring: `ring[head..]` holds events in seq order; compacted when the dead prefix grows.
  private ring: MemoryPublication[] = []
  private head = 0
  // Finished topics, oldest first (re-ending a topic moves it to the end).
  private readonly ended = new Map<string, { publication: MemoryPublication; at: number }>()
  // Idempotency keys, oldest first: the first publication of each and its fingerprint.
  private readonly seen = new Map<
    string,
    { publication: MemoryPublication; fingerprint: string; at: number }
  >()
  private readonly windowMs: number
  private readonly maxKeys: number
  private closed = false

  constructor(options: MemoryBrokerOptions = {}) {
    const resolved = resolveMemoryBrokerOptions(options)
    this.maxEvents = resolved.historyMaxEvents
    this.maxAgeMs = resolved.historyMaxAgeMs
    this.endedTtlMs = resolved.endedTopicTtlMs
    this.maxEnded = resolved.maxEndedTopics
    this.windowMs = resolved.idempotencyWindowMs
    this.maxKeys = resolved.maxIdempotencyKeys
    this.epoch = resolved.epoch
  }

  start(sink: BrokerSink): Promise<void> {
    this.sink = sink
    return Promise.resolve()
  }

  publish(request: PublishRequest): Promise<Publication> {
    try {
      return Promise.resolve(this.publishNow(request))
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)))
    }
  }

  publishNow(request: PublishRequest): Publication {
    if (this.closed) throw new Error('The memory broker is closed.')
    const now = Date.now()
    let fingerprint: string | undefined
    if (request.idempotencyKey !== undefined) {
      fingerprint = publishFingerprint(request)
      const first = this.firstPublishOf(request.idempotencyKey, fingerprint, now)
      if (first !== null) return first
    }
    const publication: MemoryPublication = {
      seq: ++this.seq,
      id: `${this.epoch}-${this.seq}`,
      keys: request.keys,
      event: request.event,
      data: request.data,
      retry: request.retry,
      close: request.close === true,
      time: now,
    }
    this.ring.push(publication)
    this.trim(now)
    if (fingerprint !== undefined) {
      this.seen.set(request.idempotencyKey!, { publication, fingerprint, at: now })
      if (this.seen.size > this.maxKeys) this.seen.delete(this.seen.keys().next().value!)
    }
    for (const key of request.keys) {
      if (publication.close) {
        this.ended.delete(key)
        this.ended.set(key, { publication, at: now })
      } else if (this.ended.size > 0) {
        // Publishing again to a finished topic reopens it.
        this.ended.delete(key)
      }
    }
    if (this.ended.size > 0) this.pruneEnded(now)
    this.sink?.publication(publication)
    return publication
  }

  /**
   * What `start` asks for of the retained events that match `wanted`, oldest first: all of them,
   * the last N, or the latest one per key. One pass from the newest back, at most the history.
   */
  private startingEvents(wanted: ReadonlySet<string>, start: StartFrom): MemoryPublication[] {
    const picked: MemoryPublication[] = []
    const missing = start === 'newest' ? new Set(wanted) : null
    missing?.delete('@all') // `all` is a target, not a key a subscription follows alone
    for (let i = this.ring.length - 1; i >= this.head; i--) {
      const publication = this.ring[i]!
      if (missing !== null) {
        let latest = false
        for (const key of publication.keys) if (missing.delete(key)) latest = true
        if (latest) picked.push(publication)
        if (missing.size === 0) break
      } else if (matches(publication, wanted)) {
        picked.push(publication)
        if (typeof start === 'number' && picked.length >= start) break
      }
    }
    return picked.reverse()
  }

  /** The latest retained event of topic key `key`, and whether the topic ended. */
  topicState(key: string): Promise<TopicState> {
    const now = Date.now()
    this.trim(now)
    this.pruneEnded(now)
    const final = this.ended.get(key)
    if (final !== undefined)
      return Promise.resolve({ lastEventId: final.publication.id, ended: true })
    for (let i = this.ring.length - 1; i >= this.head; i--) {
      const publication = this.ring[i]!
      if (publication.keys.includes(key))
        return Promise.resolve({ lastEventId: publication.id, ended: false })
    }
    return Promise.resolve({ lastEventId: null, ended: false })
  }

  /**
   * The first publication under `key` as a duplicate, `null` when the key is new (or expired).
   * @throws {SseError} `ERR_SSE_CONFLICT` when the key was used for a different event.
   */
  private firstPublishOf(key: string, fingerprint: string, now: number): Publication | null {
    // Oldest first: expired keys are at the front (amortised O(1) per publish).
    for (const [old, entry] of this.seen) {
      if (now - entry.at < this.windowMs) break
      this.seen.delete(old)
    }
    const entry = this.seen.get(key)
    if (entry === undefined) return null
    if (entry.fingerprint !== fingerprint) throw idempotencyConflict(key)
    return { ...entry.publication, duplicate: true }
  }

  resume(
    keys: readonly string[],
    lastEventId: string | undefined,
    start?: StartFrom,
  ): Promise<Resume> {
    const now = Date.now()
    this.trim(now)
    this.pruneEnded(now)
    const current = this.seq
    let from = current
    let reset: ResetReason | null = null
    if (lastEventId !== undefined) {
      const match = idPattern.exec(lastEventId)
      const seq = match === null ? NaN : Number(match[2])
      if (match === null || seq > current) reset = 'unknown'
      else if (match[1] !== this.epoch) reset = 'epoch'
      else if (seq < this.firstRetainedSeq() - 1) reset = 'expired'
      else from = seq
    }
    const wanted = new Set(keys)
    const replay: ReplayItem[] = []
    if (lastEventId === undefined && start !== undefined) {
      // A new subscription that asks for history: its events, oldest first.
      for (const publication of this.startingEvents(wanted, start))
        replay.push({ publication, id: publication.id })
    } else {
      for (
        let i = this.head + Math.max(0, from - this.firstRetainedSeq() + 1);
        i < this.ring.length;
        i++
      ) {
        const publication = this.ring[i]!
        if (matches(publication, wanted)) replay.push({ publication, id: publication.id })
      }
    }
    const ended = new Set<string>()
    const finals: MemoryPublication[] = []
    for (const key of wanted) {
      const entry = this.ended.get(key)
      if (entry === undefined) continue
      if (entry.publication.seq > from) continue // its final event is in the replay
      if (replay.some((item) => item.publication === entry.publication)) continue
      if (lastEventId !== undefined && reset === null) ended.add(key)
      // A client that never saw the final event (new, or reset) gets it: it tells the end.
      else if (!finals.includes(entry.publication)) finals.push(entry.publication)
    }
    finals.sort((a, b) => a.seq - b.seq)
    for (const publication of finals) replay.unshift({ publication, id: publication.id })
    return Promise.resolve({
      cursor: new MemoryCursor(this.epoch, current),
      replay,
      reset: reset === null ? null : { reason: reset, keys },
      ended,
    })
  }

  command(command: BrokerCommand): Promise<void> {
    this.sink?.command(command)
    return Promise.resolve()
  }

  health(): BrokerHealth {
    return {
      ok: !this.closed,
      broker: 'memory',
      details: {
        epoch: this.epoch,
        lastId: `${this.epoch}-${this.seq}`,
        historyEvents: this.ring.length - this.head,
        endedTopics: this.ended.size,
      },
    }
  }

  close(): Promise<void> {
    this.closed = true
    this.sink = null
    return Promise.resolve()
  }

  private firstRetainedSeq(): number {
    // With an empty ring every event up to `seq` was dropped (or none was published).
    return this.ring[this.head]?.seq ?? this.seq + 1
  }

  private trim(now: number): void {
    let first = this.head + Math.max(0, this.ring.length - this.head - this.maxEvents)
    if (this.maxAgeMs !== null) {
      const oldest = now - this.maxAgeMs
      while (first < this.ring.length && this.ring[first]!.time < oldest) first++
    }
    if (first === this.head) return
    this.head = first
    // Compact once the dead prefix is as large as the live part: amortised O(1) per event.
    if (this.head >= this.ring.length - this.head) {
      this.ring = this.ring.slice(this.head)
      this.head = 0
    }
  }

  private pruneEnded(now: number): void {
    for (const [key, entry] of this.ended) {
      if (this.ended.size <= this.maxEnded && entry.at >= now - this.endedTtlMs) break
      this.ended.delete(key)
    }
  }
}

function matches(publication: Publication, wanted: ReadonlySet<string>): boolean {
  for (const key of publication.keys) if (wanted.has(key)) return true
  return false
}
