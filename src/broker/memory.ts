import { optionsObject, positiveInteger, positiveIntegerOption, withDefault } from '../options.js'
import type {
  Broker,
  BrokerCommand,
  BrokerHealth,
  BrokerSink,
  Cursor,
  Publication,
  PublishRequest,
  Resume,
  ResetReason,
  StartFrom,
  TopicState,
} from './broker.js'
import { History, type SeqPublication } from './history.js'
import { IdempotencyWindow, publishFingerprint } from './idempotency.js'

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
  const epoch = options.epoch === undefined ? newEpoch() : options.epoch
  if (typeof epoch !== 'string' || !epochPattern.test(epoch)) {
    throw new RangeError(
      `Expected \`epoch\` to be 1-16 chars of [0-9a-z], got \`${String(epoch)}\` (${typeof epoch})`,
    )
  }
  return { ...resolveHistoryOptions(options), epoch }
}

/** The options the memory broker shares with every broker that keeps its history in memory. */
export type HistoryOptions = Omit<ResolvedMemoryBrokerOptions, 'epoch'>

/**
 * Applies {@link MEMORY_BROKER_DEFAULTS} to the history, idempotency and finished-topic options and
 * checks them: the one place they are checked, for the memory and the durable broker.
 * @throws {RangeError} naming the first bad option.
 */
export function resolveHistoryOptions(options: MemoryBrokerOptions): HistoryOptions {
  const defaults = MEMORY_BROKER_DEFAULTS
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
  }
}

function newEpoch(): string {
  return Math.random().toString(36).slice(2, 10).padEnd(8, '0')
}

const idPattern = /^([0-9a-z]{1,16})-(0|[1-9][0-9]{0,15})$/

/** Ids are `<epoch>-<seq>`: the epoch tells "same log" from "the hub restarted". */
class MemoryCursor implements Cursor {
  constructor(
    private readonly epoch: string,
    private seq: number,
  ) {}

  advance(publication: Publication): string | null {
    const seq = (publication as SeqPublication).seq
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
  private sink: BrokerSink | null = null
  private readonly history: History<SeqPublication>
  private readonly idempotency: IdempotencyWindow<SeqPublication>
  private closed = false

  constructor(options: MemoryBrokerOptions = {}) {
    const resolved = resolveMemoryBrokerOptions(options)
    this.history = new History({
      maxEvents: resolved.historyMaxEvents,
      maxAgeMs: resolved.historyMaxAgeMs,
      maxBytes: null,
      endedTtlMs: resolved.endedTopicTtlMs,
      maxEnded: resolved.maxEndedTopics,
    })
    this.idempotency = new IdempotencyWindow(
      resolved.idempotencyWindowMs,
      resolved.maxIdempotencyKeys,
    )
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
    const key = request.idempotencyKey
    const fingerprint = key === undefined ? '' : publishFingerprint(request)
    if (key !== undefined) {
      // Synchronous here: the window holds publications, never promises.
      const first = this.idempotency.check(key, fingerprint, now) as Publication | null
      if (first !== null) return first
    }
    const seq = this.history.lastSeq + 1
    const publication: SeqPublication = {
      seq,
      id: `${this.epoch}-${seq}`,
      keys: request.keys,
      event: request.event,
      data: request.data,
      retry: request.retry,
      close: request.close === true,
      time: now,
    }
    this.history.add(publication, now)
    if (key !== undefined) this.idempotency.remember(key, fingerprint, publication, now)
    this.sink?.publication(publication)
    return publication
  }

  /** The latest retained event of topic key `key`, and whether the topic ended. */
  topicState(key: string): Promise<TopicState> {
    return Promise.resolve(this.history.topicState(key, Date.now()))
  }

  resume(
    keys: readonly string[],
    lastEventId: string | undefined,
    start?: StartFrom,
  ): Promise<Resume> {
    const found = this.history.resume(
      keys,
      lastEventId,
      start,
      (id, current) => this.position(id, current),
      Date.now(),
    )
    return Promise.resolve({
      cursor: new MemoryCursor(this.epoch, found.current),
      replay: found.replay,
      reset: found.reset,
      ended: found.ended,
    })
  }

  /** The seq `id` names in this log, or why it cannot be resumed. */
  private position(id: string, current: number): number | ResetReason {
    const match = idPattern.exec(id)
    const seq = match === null ? NaN : Number(match[2])
    if (match === null || seq > current) return 'unknown'
    if (match[1] !== this.epoch) return 'epoch'
    if (seq < this.history.firstRetainedSeq() - 1) return 'expired'
    return seq
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
        lastId: `${this.epoch}-${this.history.lastSeq}`,
        historyEvents: this.history.size,
        endedTopics: this.history.endedSize,
      },
    }
  }

  close(): Promise<void> {
    this.closed = true
    this.sink = null
    return Promise.resolve()
  }
}
