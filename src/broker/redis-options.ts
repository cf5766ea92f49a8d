/**
 * The Redis broker's options: their defaults in one frozen object ({@link REDIS_BROKER_DEFAULTS})
 * and their checks, made once when the broker is built. The `@default` of each field is the
 * value in {@link REDIS_BROKER_DEFAULTS}; keep the two equal.
 */
import { MEMORY_BROKER_DEFAULTS } from './memory.js'
import { defaultNodeId } from './node-id.js'
import { hashTag, isCluster, type RedisClient } from './redis-client.js'
import {
  nonNegativeIntegerOption,
  optionsObject,
  positiveInteger,
  positiveIntegerOption,
  withDefault,
} from '../options.js'

/** Options of `RedisBroker`. Defaults: {@link REDIS_BROKER_DEFAULTS}. */
export interface RedisBrokerOptions {
  /**
   * The Redis client (ioredis): a `Redis` (a server, Sentinel, a managed endpoint) or a `Cluster`.
   * The broker never parses URLs: the application builds the client with its own settings
   * (Sentinel, TLS...). The broker calls `duplicate()` for its blocking reader, which must not
   * share a connection with other commands.
   */
  readonly client: RedisClient
  /**
   * Prefix of every key. Its hash tag (`{hub}`) puts every key of the broker (log, meta, finished
   * topics, idempotency keys, presence) in one Cluster slot: the publish script and the presence
   * writes touch several keys at once, which a Cluster allows only within a slot. With a Cluster
   * client a prefix without a hash tag is refused. One slot means one shard: see
   * `docs/deployment.md` ("Redis Cluster") for that ceiling.
   * @default 'ssehub:{hub}:'
   */
  readonly prefix?: string
  /**
   * Events kept in the stream (approximate `MAXLEN ~`).
   * @default 10000
   */
  readonly historyMaxEvents?: number
  /**
   * Oldest event kept, in ms (`MINID ~` trimming at publish); `null` for the count bound only.
   * @default 3600000
   */
  readonly historyMaxAgeMs?: number | null
  /**
   * How long a finished topic is remembered, in ms.
   * @default 3600000
   */
  readonly endedTopicTtlMs?: number
  /**
   * How long an idempotency key is remembered, in ms (a Redis key with this TTL per keyed
   * publish): a publish retried with its key within it, on any node, returns the first one's id.
   * @default 3600000
   */
  readonly idempotencyWindowMs?: number
  /**
   * A publish that Redis has not confirmed within this time fails (`ERR_SSE_BROKER_UNAVAILABLE`),
   * in ms.
   * @default 2000
   */
  readonly publishTimeoutMs?: number
  /**
   * Most events (publishes and commands) carried by one round trip to Redis. The publishes of one
   * turn of the event loop travel together, in order, in one script call; a turn with more sends
   * a batch each time this many are queued. A batch runs atomically in Redis, so this also bounds
   * how long one batch holds Redis (a few µs per event).
   * @default 256
   */
  readonly maxPublishBatchEvents?: number
  /**
   * Batches on their way to Redis at once. A node keeps publishing while earlier batches travel
   * (Redis runs one connection's commands in the order sent, so order holds); at 1, a batch waits
   * for the previous one's answer, and publishers wait a round trip more under load.
   * @default 4
   */
  readonly maxPublishBatchesInFlight?: number
  /**
   * How long the reader waits for this node's own publishes, in ms (0: never): entries it read
   * while they are on their way to Redis are held at most this long, so that connections get
   * both in one socket write; and after a publish it waits this long for the next before it
   * blocks in `XREAD`, since the publish answers read back for it. Entries of other nodes are
   * late by at most this much. See `docs/deployment.md` ("Read coalescing").
   * @default 2
   */
  readonly readCoalesceMs?: number
  /**
   * `BLOCK` of the reader's `XREAD`, in ms; the watchdog fires at this plus 3 s.
   * @default 2000
   */
  readonly blockMs?: number
  /**
   * Entries read per `XREAD`.
   * @default 500
   */
  readonly readCount?: number
  /**
   * Largest replay on resume, in entries scanned (a DoS guard); past it the client gets a reset.
   * @default 20000
   */
  readonly maxReplayScan?: number
  /**
   * This node's id in the cluster's presence (`/clients`, `/stats`). Without it, `<hostname>:<pid>`
   * (computed per process, so it is not in {@link REDIS_BROKER_DEFAULTS}).
   */
  readonly nodeId?: string
  /**
   * How long a node's presence (its connections, online counts and stats in Redis) outlives it,
   * in ms: a node that dies vanishes from every node's answers within this time. It renews its
   * entries every third of it.
   * @default 15000
   */
  readonly presenceTtlMs?: number
  /**
   * Longest delay between a connection opening or closing and its presence in Redis, in ms
   * (changes are batched: one write per interval).
   * @default 100
   */
  readonly presenceFlushMs?: number
}

/** {@link RedisBrokerOptions} with every default applied and every value checked. */
export type ResolvedRedisBrokerOptions = {
  readonly [K in keyof RedisBrokerOptions]-?: Exclude<RedisBrokerOptions[K], undefined>
}

/** The default of every {@link RedisBrokerOptions} field but `client` (required). */
export const REDIS_BROKER_DEFAULTS: Omit<ResolvedRedisBrokerOptions, 'client' | 'nodeId'> =
  Object.freeze({
    prefix: 'ssehub:{hub}:',
    // The history bounds are the memory broker's: one home, and `--history-*` means the same on both.
    historyMaxEvents: MEMORY_BROKER_DEFAULTS.historyMaxEvents,
    historyMaxAgeMs: MEMORY_BROKER_DEFAULTS.historyMaxAgeMs,
    endedTopicTtlMs: MEMORY_BROKER_DEFAULTS.endedTopicTtlMs,
    idempotencyWindowMs: MEMORY_BROKER_DEFAULTS.idempotencyWindowMs,
    publishTimeoutMs: 2_000,
    maxPublishBatchEvents: 256,
    maxPublishBatchesInFlight: 4,
    readCoalesceMs: 2,
    blockMs: 2_000,
    readCount: 500,
    maxReplayScan: 20_000,
    presenceTtlMs: 15_000,
    presenceFlushMs: 100,
  })

/** The options that are positive integers. */
type IntKey = Exclude<
  keyof typeof REDIS_BROKER_DEFAULTS,
  'prefix' | 'historyMaxAgeMs' | 'readCoalesceMs'
>

/**
 * Applies {@link REDIS_BROKER_DEFAULTS} and checks every field, so that a bad value fails when the
 * broker is built.
 * @throws {TypeError} without a client; {@link RangeError} naming the first bad option.
 */
export function resolveRedisBrokerOptions(options: RedisBrokerOptions): ResolvedRedisBrokerOptions {
  optionsObject('Redis broker', options)
  const client = options.client as unknown
  if (typeof client !== 'object' || client === null || !('duplicate' in client)) {
    throw new TypeError(
      `Expected \`client\` to be an ioredis client, got \`${String(client)}\` (${client === null ? 'null' : typeof client})`,
    )
  }
  const d = REDIS_BROKER_DEFAULTS
  const prefix = withDefault(options.prefix, d.prefix)
  if (typeof prefix !== 'string') {
    throw new RangeError(
      `Expected \`prefix\` to be a string, got \`${String(prefix)}\` (${typeof prefix})`,
    )
  }
  // A Cluster hashes each key on its own unless they share a tag: the publish script would fail
  // with CROSSSLOT at the first publish. Refused here, when the broker is built.
  if (isCluster(options.client) && hashTag(prefix) === null) {
    throw new RangeError(
      `Expected \`prefix\` to contain a Redis Cluster hash tag such as \`{hub}\` (every key of the broker must be in one slot), got ${JSON.stringify(prefix)}`,
    )
  }
  const int = (name: IntKey): number => positiveInteger(name, withDefault(options[name], d[name]))
  return {
    client: options.client,
    prefix,
    historyMaxEvents: int('historyMaxEvents'),
    historyMaxAgeMs: positiveIntegerOption(
      'historyMaxAgeMs',
      withDefault(options.historyMaxAgeMs, d.historyMaxAgeMs),
      true,
    ),
    endedTopicTtlMs: int('endedTopicTtlMs'),
    idempotencyWindowMs: int('idempotencyWindowMs'),
    publishTimeoutMs: int('publishTimeoutMs'),
    maxPublishBatchEvents: int('maxPublishBatchEvents'),
    maxPublishBatchesInFlight: int('maxPublishBatchesInFlight'),
    readCoalesceMs: nonNegativeIntegerOption(
      'readCoalesceMs',
      withDefault(options.readCoalesceMs, d.readCoalesceMs),
      false,
    )!,
    blockMs: int('blockMs'),
    readCount: int('readCount'),
    maxReplayScan: int('maxReplayScan'),
    nodeId: nodeIdOption(options.nodeId),
    presenceTtlMs: int('presenceTtlMs'),
    presenceFlushMs: int('presenceFlushMs'),
  }
}

/** A node id: printable, no spaces, at most 200 characters (it is part of Redis key names). */
function nodeIdOption(value: unknown): string {
  if (value === undefined) return defaultNodeId()
  if (typeof value !== 'string' || !/^[\x21-\x7e]{1,200}$/.test(value)) {
    throw new RangeError(
      `Expected \`nodeId\` to be 1 to 200 printable ASCII characters without spaces, got ${JSON.stringify(value)}`,
    )
  }
  return value
}
