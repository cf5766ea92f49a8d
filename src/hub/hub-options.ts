/**
 * The hub's options: their defaults in one frozen object ({@link HUB_DEFAULTS}) and their checks,
 * all made once, when the hub is built ({@link resolveHubOptions}). The `@default` of each field
 * below is the value in {@link HUB_DEFAULTS}; keep the two equal.
 */
import type { Broker } from '../broker/broker.js'
import { resolveMemoryBrokerOptions, type MemoryBrokerOptions } from '../broker/memory.js'
import {
  nonNegativeIntegerOption,
  oneOfOption,
  optionsObject,
  positiveInteger,
  positiveIntegerOption,
  withDefault,
} from '../options.js'

/** What to do when a connection limit is reached. */
export type OverflowPolicy =
  /** Refuse the new connection (`ERR_SSE_LIMIT_REACHED`, with `Retry-After`). */
  | 'reject'
  /** Close the least recently active connection (reason `evicted`) to make room. */
  | 'evict'

/**
 * Options of `createHub`. Every field has a safe default ({@link HUB_DEFAULTS}); `null` turns a
 * limit or a timer off where the type allows it. The history fields (from
 * {@link MemoryBrokerOptions}) configure the default broker.
 */
export interface HubOptions extends MemoryBrokerOptions {
  /**
   * The broker. Default: a `MemoryBroker` built from the history options of this object (with a
   * broker of your own, configure its history on it).
   */
  readonly broker?: Broker
  /**
   * Interval of heartbeat comments on idle connections, in ms; `null` turns them off. One timer
   * serves the whole hub, and a connection written to recently is skipped.
   * @default 15000
   */
  readonly heartbeatMs?: number | null
  /**
   * The `retry:` reconnection delay sent when a stream opens, in ms; `null` sends none.
   * @default 2000
   */
  readonly retryMs?: number | null
  /**
   * Close connections older than this (reason `timeout`; clients reconnect and resume), in ms.
   * @default null
   */
  readonly maxConnectionAgeMs?: number | null
  /**
   * Unsent bytes allowed per connection before it is closed as a slow consumer.
   * @default 262144
   */
  readonly maxQueuedBytes?: number
  /**
   * Live events queued per connection while its history replays; past it, slow consumer.
   * @default 10000
   */
  readonly maxPendingEvents?: number
  /**
   * Open connections in all; `null` for no limit (the OS file limit still applies).
   * @default 10000
   */
  readonly maxConnections?: number | null
  /**
   * Open connections per client id; `null` for no limit.
   * @default 100
   */
  readonly maxConnectionsPerClient?: number | null
  /**
   * Open connections per remote IP address; past it, `ERR_SSE_RATE_LIMITED`. `null` for no limit.
   * Off by default: behind a reverse proxy every stream comes from the proxy's one address, so a
   * per-IP limit would cap the whole hub; `maxConnections` bounds the total. Set it where the
   * hub sees its clients' own addresses: facing them directly, or behind a proxy named in the
   * server's `trustProxy` (docs/deployment.md).
   * @default null
   */
  readonly maxConnectionsPerIp?: number | null
  /**
   * Topics one connection may follow.
   * @default 32
   */
  readonly maxTopicsPerConnection?: number
  /**
   * Topics one publish may target.
   * @default 100
   */
  readonly maxTopicsPerPublish?: number
  /**
   * What to do at a connection limit.
   * @default 'reject'
   */
  readonly overflow?: OverflowPolicy
  /**
   * Longest topic name, in characters.
   * @default 256
   */
  readonly maxTopicLength?: number
  /**
   * Longest client id, in characters.
   * @default 256
   */
  readonly maxClientIdLength?: number
  /**
   * Longest event name, in characters.
   * @default 128
   */
  readonly maxEventNameLength?: number
}

/** The hub's own fields of {@link HubOptions} (not the broker, not the history). */
type OwnHubOptions = Omit<HubOptions, 'broker' | keyof MemoryBrokerOptions>

/** The hub's own options with every default applied and every value checked. */
export type ResolvedHubOptions = {
  readonly [K in keyof OwnHubOptions]-?: Exclude<OwnHubOptions[K], undefined>
}

/** The default of every hub option; the `@default` tags of {@link HubOptions} repeat these. */
export const HUB_DEFAULTS: ResolvedHubOptions = Object.freeze({
  heartbeatMs: 15_000,
  retryMs: 2_000,
  maxConnectionAgeMs: null,
  maxQueuedBytes: 262_144,
  maxPendingEvents: 10_000,
  maxConnections: 10_000,
  maxConnectionsPerClient: 100,
  maxConnectionsPerIp: null,
  maxTopicsPerConnection: 32,
  maxTopicsPerPublish: 100,
  overflow: 'reject',
  maxTopicLength: 256,
  maxClientIdLength: 256,
  maxEventNameLength: 128,
})

/** The options that are positive integers. */
type IntKey = {
  [K in keyof ResolvedHubOptions]: ResolvedHubOptions[K] extends number ? K : never
}[keyof ResolvedHubOptions]

/** The options that are positive integers or `null` ("off"). */
type NullableIntKey = {
  [K in keyof ResolvedHubOptions]: null extends ResolvedHubOptions[K] ? K : never
}[keyof ResolvedHubOptions]

const overflowPolicies: readonly OverflowPolicy[] = ['reject', 'evict']

const brokerMethods = ['start', 'publish', 'resume', 'command', 'health', 'close'] as const

/**
 * Applies {@link HUB_DEFAULTS} and checks every option, so that a bad value fails when the hub is
 * built, with a message that names it, not at the first connection. The history options are
 * checked too, even with a broker of your own (where they are unused): a typo'd value should not
 * pass silently. Unknown keys are allowed: the server's options extend these.
 * @throws {RangeError} naming the first bad option; {@link TypeError} for a `broker` that is not one.
 */
export function resolveHubOptions(options: HubOptions = {}): ResolvedHubOptions {
  optionsObject('hub', options)
  checkBroker(options.broker)
  resolveMemoryBrokerOptions(options)
  const d = HUB_DEFAULTS
  const int = (name: IntKey): number => positiveInteger(name, withDefault(options[name], d[name]))
  const intOrNull = (name: NullableIntKey): number | null =>
    positiveIntegerOption(name, withDefault(options[name], d[name]), true)
  return {
    heartbeatMs: intOrNull('heartbeatMs'),
    // 0 is a valid `retry:` (reconnect at once), unlike the other durations.
    retryMs: nonNegativeIntegerOption('retryMs', withDefault(options.retryMs, d.retryMs), true),
    maxConnectionAgeMs: intOrNull('maxConnectionAgeMs'),
    maxQueuedBytes: int('maxQueuedBytes'),
    maxPendingEvents: int('maxPendingEvents'),
    maxConnections: intOrNull('maxConnections'),
    maxConnectionsPerClient: intOrNull('maxConnectionsPerClient'),
    maxConnectionsPerIp: intOrNull('maxConnectionsPerIp'),
    maxTopicsPerConnection: int('maxTopicsPerConnection'),
    maxTopicsPerPublish: int('maxTopicsPerPublish'),
    overflow: oneOfOption('overflow', withDefault(options.overflow, d.overflow), overflowPolicies),
    maxTopicLength: int('maxTopicLength'),
    maxClientIdLength: int('maxClientIdLength'),
    maxEventNameLength: int('maxEventNameLength'),
  }
}

function checkBroker(broker: unknown): void {
  if (broker === undefined) return
  if (typeof broker === 'object' && broker !== null) {
    const missing = brokerMethods.filter(
      (method) => typeof (broker as Record<string, unknown>)[method] !== 'function',
    )
    if (missing.length === 0) return
    throw new TypeError(
      `Expected \`broker\` to be a Broker, got an object without ${missing.join(', ')} (see broker.ts: ${brokerMethods.join(', ')})`,
    )
  }
  throw new TypeError(
    `Expected \`broker\` to be a Broker (an object with ${brokerMethods.join(', ')} methods), got ${broker === null ? 'null' : `a ${typeof broker}`}`,
  )
}
