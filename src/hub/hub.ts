import type { Broker, BrokerCommand, Cursor, Publication, Resume } from '../broker/broker.js'
import { MemoryBroker, type MemoryBrokerOptions } from '../broker/memory.js'
import {
  Connection,
  dataToString,
  type CloseReason,
  type EventMap,
  type EventSource,
} from '../connection/connection.js'
import { createFetchTransport } from '../connection/fetch.js'
import {
  createNodeTransport,
  type NodeRequest,
  type NodeResponse,
} from '../connection/node-http.js'
import type { Transport } from '../connection/transport.js'
import { ErrorCodes, SseError, isSseError } from '../errors.js'
import { encodeDataLines, encodeEventText, type SseEvent } from '../wire/encode.js'
import { TypedEmitter } from './emitter.js'
import { positiveIntegerOption } from '../options.js'
import {
  validateClientId,
  validateEventName,
  validateRetry,
  validateTopic,
  type NameLimits,
} from './validate.js'

/** What to do when a connection limit is reached. */
export type OverflowPolicy =
  /** Refuse the new connection with `503` and `Retry-After`. */
  | 'reject'
  /** Close the least recently active connection (reason `evicted`) to make room. */
  | 'evict'

/** Options of {@link createHub}. Every field has a safe default. */
export interface HubOptions extends MemoryBrokerOptions {
  /** The broker. Default: a {@link MemoryBroker} built from the history options of this object. */
  readonly broker?: Broker
  /**
   * Interval of heartbeat comments on idle connections, in ms; `null` turns them off. One timer
   * serves the whole hub, and a connection written to recently is skipped.
   * @default 15000
   */
  readonly heartbeatMs?: number | null
  /** The `retry:` reconnection delay sent when a stream opens, in ms; `null` sends none. @default 2000 */
  readonly retryMs?: number | null
  /** Close connections older than this (reason `timeout`; clients reconnect and resume), in ms. @default null */
  readonly maxConnectionAgeMs?: number | null
  /** Unsent bytes allowed per connection before it is closed as a slow consumer. @default 262144 */
  readonly maxQueuedBytes?: number
  /** Live events queued per connection while its history replays; past it, slow consumer. @default 10000 */
  readonly maxPendingEvents?: number
  /** Open connections in all; `null` for no limit (the OS file limit still applies). @default 10000 */
  readonly maxConnections?: number | null
  /** Open connections per client id; `null` for no limit. @default 100 */
  readonly maxConnectionsPerClient?: number | null
  /** Open connections per remote IP address; past it, `429`. `null` for no limit. @default 1000 */
  readonly maxConnectionsPerIp?: number | null
  /** Topics one connection may follow. @default 32 */
  readonly maxTopicsPerConnection?: number
  /** Topics one publish may target. @default 100 */
  readonly maxTopicsPerPublish?: number
  /** What to do at a connection limit. @default 'reject' */
  readonly overflow?: OverflowPolicy
  /** Longest topic name, in characters. @default 256 */
  readonly maxTopicLength?: number
  /** Longest client id, in characters. @default 256 */
  readonly maxClientIdLength?: number
  /** Longest event name, in characters. @default 128 */
  readonly maxEventNameLength?: number
}

/** Where a publish goes: topics, a client id, everyone; several may be combined (union). */
export interface PublishTarget {
  /** One topic or several. */
  readonly topic?: string | readonly string[]
  /** Every connection of this client id. */
  readonly clientId?: string
  /** Every connection. */
  readonly all?: boolean
}

/** A publish: a target plus the event. */
export interface PublishInput extends PublishTarget {
  /** Event type name (default `message` on clients). */
  readonly event?: string
  /** Payload: a string is sent as is, any other value JSON-encoded. */
  readonly data: unknown
  /** Reconnection delay for clients, in ms. */
  readonly retry?: number
  /** The last event of its topics: subscribers get it, then their streams end (finite topics). */
  readonly close?: boolean
}

/**
 * A publish typed by the hub's event map: with `createHub<{ progress: { pct: number } }>()`,
 * `publish({ topic, event: 'progress', data: { pct: 50 } })` type-checks and a wrong payload does
 * not. With the default map any name and payload go.
 */
export type TypedPublishInput<E extends EventMap, K extends keyof E & string> = PublishTarget & {
  /** Event type name (default `message` on clients). */
  readonly event?: K
  /** Payload: a string is sent as is, any other value JSON-encoded. */
  readonly data: E[K]
  /** Reconnection delay for clients, in ms. */
  readonly retry?: number
  /** The last event of its topics: subscribers get it, then their streams end (finite topics). */
  readonly close?: boolean
}

/** What {@link Hub.publish} resolves with. */
export interface PublishResult {
  /** The event id the broker assigned. */
  readonly id: string
  /** How many connections of this process it reached. */
  readonly connections: number
}

/** What a connection follows and where it resumes from. */
export interface SubscribeParams {
  /** Topics to follow. */
  readonly topics?: readonly string[]
  /** The client id (several connections, e.g. tabs, may share one). */
  readonly clientId?: string
  /** Resume after this event id (from `Last-Event-ID`); `undefined` starts live. */
  readonly lastEventId?: string
  /** End the stream at this time, ms since the epoch (a token's expiry). */
  readonly expiresAt?: number
}

/** Counters and gauges of a hub. */
export interface HubStats {
  /** Open connections. */
  readonly connections: number
  /** Distinct client ids connected. */
  readonly clientIds: number
  /** Distinct topics with at least one connection. */
  readonly topics: number
  /** Publishes accepted through this hub. */
  readonly eventsPublished: number
  /** Publications received from the broker (from any node). */
  readonly eventsIn: number
  /** Event frames written to connections. */
  readonly eventsOut: number
  /** Bytes written to connections. */
  readonly bytesOut: number
  /** Connections closed because they did not read fast enough. */
  readonly slowConsumerCloses: number
  /** Connections closed to make room (`overflow: 'evict'`). */
  readonly evictions: number
  /** Connections refused at a limit. */
  readonly rejections: number
  /** Closed connections by reason. */
  readonly closed: Readonly<Record<CloseReason, number>>
}

/** One connection as `GET /clients` lists it. */
export interface ConnectionInfo {
  /** Connection id. */
  readonly id: string
  /** Client id, if any. */
  readonly clientId: string | undefined
  /** Topics followed. */
  readonly topics: readonly string[]
  /** Connected since (ISO 8601). */
  readonly connectedAt: string
  /** Peer address. */
  readonly remoteAddress: string | undefined
  /** Unsent bytes. */
  readonly queuedBytes: number
}

/** The hub's lifecycle events. */
export type HubEvents = {
  /** A stream opened (after its replay). */
  connected: [connection: Connection]
  /** A stream closed, with the reason. */
  closed: [connection: Connection, reason: CloseReason]
  /** A client id's tokens were revoked (on any node) until `at`: the server refuses them. */
  revoked: [clientId: string, at: number]
  /** An operational error (broker trouble, a failed resume). The hub keeps running. */
  error: [error: Error]
}

/** The hub's own event names. Application events cannot use the `ssehub.` prefix. */
export const RESET_EVENT = 'ssehub.reset'

const ALL_KEY = '@all'
const CLIENT_PREFIX = '@c/'

/** Per-connection state the hub keeps next to the {@link Connection}. */
interface Member {
  readonly connection: Connection
  /** Routing keys: topics, `@c/<clientId>`, `@all`. */
  readonly keys: readonly string[]
  /** Topics not finished yet; when a connection with topics has none left, it completes. */
  readonly openTopics: Set<string>
  cursor: Cursor | null
  /** Live publications that arrived while the history replayed; `null` once live. */
  queue: Publication[] | null
  /** The fan-out pass that last visited this member (dedupes multi-key publications). */
  mark: number
  /** Set once `connected` was emitted, so that `closed` pairs with it. */
  announced: boolean
  /** A broker-wide reset arrived while the history replayed: sent before the queued live events. */
  resetPending: string | null
}

const closeReasons: readonly CloseReason[] = [
  'client-gone',
  'timeout',
  'server-close',
  'evicted',
  'slow-consumer',
  'shutdown',
  'completed',
  'expired',
  'revoked',
]

function readQuery(url: string | undefined): SubscribeParams {
  const query = new URL(url ?? '/', 'http://x').searchParams
  const clientId = query.get('clientId') ?? undefined
  const lastEventId = query.get('lastEventId') ?? query.get('last_event_id') ?? undefined
  return {
    topics: query.getAll('topic'),
    ...(clientId === undefined ? {} : { clientId }),
    ...(lastEventId === undefined ? {} : { lastEventId }),
  }
}

/**
 * The hub: a registry of connections by topic and client id, the publish path and the
 * subscribe -> replay -> live path. Embed it in any server, or use `createHubServer`.
 */
export class Hub<E extends EventMap = EventMap> extends TypedEmitter<HubEvents> {
  /** The broker behind this hub. */
  readonly broker: Broker
  /** Resolves when the broker is started; publishes wait for it. */
  readonly ready: Promise<void>
  private readonly ownsBroker: boolean
  private readonly heartbeatMs: number | null
  private readonly retryFrame: Buffer | null
  private readonly maxAgeMs: number | null
  private readonly maxQueuedBytes: number
  private readonly maxPending: number
  private readonly maxConnections: number | null
  private readonly maxPerClient: number | null
  private readonly maxPerIp: number | null
  private readonly perIp = new Map<string, number>()
  private readonly maxTopics: number
  private readonly maxTopicsPerPublish: number
  private readonly overflow: OverflowPolicy
  private readonly limits: NameLimits
  private readonly members = new Map<Connection, Member>()
  private readonly topicIndex = new Map<string, Set<Member>>()
  private readonly clientIndex = new Map<string, Set<Member>>()
  private readonly counters = {
    bytesOut: 0,
    eventsPublished: 0,
    eventsIn: 0,
    eventsOut: 0,
    evictions: 0,
    rejections: 0,
  }
  private readonly closedBy: Record<CloseReason, number> = Object.fromEntries(
    closeReasons.map((reason) => [reason, 0]),
  ) as Record<CloseReason, number>
  private timer: NodeJS.Timeout | null = null
  private nextId = 0
  private pass = 0
  private closing = false
  private started = false

  constructor(options: HubOptions = {}) {
    super()
    this.ownsBroker = options.broker === undefined
    this.broker = options.broker ?? new MemoryBroker(options)
    const heartbeat = options.heartbeatMs === undefined ? 15_000 : options.heartbeatMs
    this.heartbeatMs = positiveIntegerOption('heartbeatMs', heartbeat, true)
    const retry = options.retryMs === undefined ? 2_000 : options.retryMs
    this.retryFrame =
      retry === null ? null : Buffer.from(`retry: ${validateRetryOption(retry)}\n\n`)
    this.maxAgeMs = positiveIntegerOption(
      'maxConnectionAgeMs',
      options.maxConnectionAgeMs ?? null,
      true,
    )
    this.maxQueuedBytes = positiveIntegerOption(
      'maxQueuedBytes',
      options.maxQueuedBytes ?? 262_144,
      false,
    )!
    this.maxPending = positiveIntegerOption(
      'maxPendingEvents',
      options.maxPendingEvents ?? 10_000,
      false,
    )!
    this.maxConnections = positiveIntegerOption(
      'maxConnections',
      options.maxConnections === undefined ? 10_000 : options.maxConnections,
      true,
    )
    this.maxPerClient = positiveIntegerOption(
      'maxConnectionsPerClient',
      options.maxConnectionsPerClient === undefined ? 100 : options.maxConnectionsPerClient,
      true,
    )
    this.maxPerIp = positiveIntegerOption(
      'maxConnectionsPerIp',
      options.maxConnectionsPerIp === undefined ? 1000 : options.maxConnectionsPerIp,
      true,
    )
    this.maxTopics = positiveIntegerOption(
      'maxTopicsPerConnection',
      options.maxTopicsPerConnection ?? 32,
      false,
    )!
    this.maxTopicsPerPublish = positiveIntegerOption(
      'maxTopicsPerPublish',
      options.maxTopicsPerPublish ?? 100,
      false,
    )!
    const overflow = options.overflow ?? 'reject'
    if (overflow !== 'reject' && overflow !== 'evict') {
      throw new RangeError(
        `Expected \`overflow\` to be 'reject' or 'evict', got \`${String(overflow)}\``,
      )
    }
    this.overflow = overflow
    this.limits = {
      maxTopicLength: positiveIntegerOption(
        'maxTopicLength',
        options.maxTopicLength ?? 256,
        false,
      )!,
      maxClientIdLength: positiveIntegerOption(
        'maxClientIdLength',
        options.maxClientIdLength ?? 256,
        false,
      )!,
      maxEventNameLength: positiveIntegerOption(
        'maxEventNameLength',
        options.maxEventNameLength ?? 128,
        false,
      )!,
    }
    this.ready = this.broker.start({
      publication: (publication) => this.deliver(publication),
      command: (command) => this.runCommand(command),
      reset: (reason) => this.resetAll(reason),
      error: (error) => this.reportError(error),
    })
    this.ready.then(
      () => (this.started = true),
      () => {},
    )
    // A failed start is reported through `ready` (the server awaits it) and as an error event.
    this.ready.catch((error: unknown) => this.reportError(asError(error)))
    this.startTimer()
  }

  /**
   * Publishes an event; resolves once the broker has it, with its id and the number of local
   * connections reached.
   * @throws {SseError} `ERR_SSE_BAD_REQUEST` / `ERR_SSE_INVALID_FIELD` (status 400) for a bad
   * input, `ERR_SSE_CLOSED` after {@link Hub.close}, `ERR_SSE_BROKER_UNAVAILABLE` (503).
   */
  publish<K extends keyof E & string>(input: TypedPublishInput<E, K>): Promise<PublishResult> {
    return this.publishInput(input)
  }

  /**
   * Publishes several events, in order. Every input is checked first: one bad input publishes
   * none (the error names its index). Resolves with one result per input.
   * @throws {SseError} as {@link Hub.publish}; when the broker refuses some events after others
   * were published, `ERR_SSE_BROKER_UNAVAILABLE` says how many were published.
   */
  async publishMany(inputs: readonly PublishInput[]): Promise<PublishResult[]> {
    const requests = inputs.map((input, index) => {
      try {
        return this.toRequest(input)
      } catch (error) {
        if (!isSseError(error)) throw error
        throw new SseError(error.code, `events[${index}]: ${error.message}`)
      }
    })
    // Issued in order (each reaches the broker before the next starts), awaited together: a
    // remote broker gets them pipelined.
    const settled = await Promise.allSettled(
      requests.map((request) => this.publishRequest(request)),
    )
    const results: PublishResult[] = []
    for (const [index, outcome] of settled.entries()) {
      if (outcome.status === 'fulfilled') {
        results.push(outcome.value)
        continue
      }
      const reason: unknown = outcome.reason
      const published = settled.filter((s) => s.status === 'fulfilled').length
      if (published === 0) throw reason
      const cause = reason instanceof Error ? reason : new Error(String(reason))
      throw new SseError(
        ErrorCodes.BROKER_UNAVAILABLE,
        `${published} of ${inputs.length} events were published; events[${index}] and later failures were not (${cause.message}). Publish the failed ones again.`,
        { cause },
      )
    }
    return results
  }

  /**
   * Publishes at once when the broker takes events synchronously (the memory broker): the result
   * comes back in the calling tick, with no promise per event (the hub server's publish path uses
   * it). Returns `undefined` when the broker is asynchronous (Redis) or not started yet: use
   * {@link Hub.publish} then.
   * @throws {SseError} where {@link Hub.publish} would reject.
   */
  publishNow<K extends keyof E & string>(
    input: TypedPublishInput<E, K>,
  ): PublishResult | undefined {
    if (this.broker.publishNow === undefined || !this.started) return undefined
    return this.commitNow(this.toRequest(input))
  }

  // Async: a bad input rejects the returned promise, it never throws at the caller.
  private async publishInput(input: PublishInput): Promise<PublishResult> {
    return this.publishRequest(this.toRequest(input))
  }

  private async publishRequest(request: PublishRequest): Promise<PublishResult> {
    if (this.closing) throw closedError()
    if (!this.started) await this.ready
    if (this.broker.publishNow !== undefined) return this.commitNow(request)
    let publication: Publication
    try {
      publication = await this.broker.publish(request)
    } catch (error) {
      throw brokerError(error)
    }
    return this.published(publication)
  }

  /** Publishes through the broker's synchronous path (it has one: checked by the caller). */
  private commitNow(request: PublishRequest): PublishResult {
    if (this.closing) throw closedError()
    let publication: Publication
    try {
      publication = this.broker.publishNow!(request)
    } catch (error) {
      throw brokerError(error)
    }
    return this.published(publication)
  }

  private published(publication: Publication): PublishResult {
    this.counters.eventsPublished++
    return {
      id: publication.id,
      // A synchronous broker delivered it inside the call: deliver() counted the connections.
      connections:
        publication === this.lastDelivered
          ? this.lastReached
          : this.countMatching(publication.keys),
    }
  }

  // The latest publication deliver() fanned out, and to how many connections (one of each, not a
  // map: only a synchronous publish asks, right after its own delivery).
  private lastDelivered: Publication | null = null
  private lastReached = 0

  /**
   * Publishes every item of `source` as an event to `target` (a token generator becomes a stream
   * of events); with `close`, a final event ends the topic. Resolves with the ids published.
   */
  async pipe(
    target: PublishTarget,
    source: EventSource<unknown>,
    options: { event?: string; close?: { event?: string; data: unknown } } = {},
  ): Promise<string[]> {
    const ids: string[] = []
    for await (const data of source) {
      const { id } = await this.publishInput({
        ...target,
        ...(options.event === undefined ? {} : { event: options.event }),
        data,
      })
      ids.push(id)
    }
    if (options.close !== undefined) {
      const { id } = await this.publishInput({ ...target, ...options.close, close: true })
      ids.push(id)
    }
    return ids
  }

  /**
   * Subscribes a node:http (or http2 compat) request. Without `params`, reads the same query as
   * the hub server (`topic`, `clientId`, `lastEventId`); `Last-Event-ID` (header) wins over the
   * query. Bad input or a limit is answered on `res` (400/503) and the returned connection is closed.
   *
   * The hub writes to `res` directly: keep compression and other buffering middleware off this
   * route, or events sit in a buffer instead of reaching the client.
   */
  subscribe(req: NodeRequest, res: NodeResponse, params?: SubscribeParams): Connection<E> {
    const resolved = params ?? readQuery(req.url)
    const header = req.headers['last-event-id']
    const lastEventId = typeof header === 'string' ? header : resolved.lastEventId
    return this.attach(createNodeTransport(req, res), {
      ...resolved,
      ...(lastEventId === undefined ? {} : { lastEventId }),
    })
  }

  /**
   * Subscribes a fetch-style `Request` (Hono, Next.js route handlers): returns the connection and
   * the `Response` to return from the handler.
   */
  subscribeWeb(
    request: Request,
    params?: SubscribeParams,
    /** The peer's address (e.g. Hono's `getConnInfo(c).remote.address`), for the per-IP limit. */
    remoteAddress?: string,
  ): { connection: Connection<E>; response: Promise<Response> } {
    const resolved = params ?? readQuery(request.url)
    const lastEventId = request.headers.get('last-event-id') ?? resolved.lastEventId
    const transport = createFetchTransport(remoteAddress)
    const connection = this.attach(transport, {
      ...resolved,
      ...(lastEventId === undefined ? {} : { lastEventId }),
    })
    return { connection, response: transport.response }
  }

  /** Subscribes a custom {@link Transport}: the seam for other servers. */
  attach(transport: Transport, params: SubscribeParams): Connection<E> {
    let topics: string[]
    let clientId: string | undefined
    let failure: SseError | undefined
    try {
      ;({ topics, clientId } = this.checkParams(params))
    } catch (error) {
      topics = []
      failure = isSseError(error)
        ? error
        : new SseError(ErrorCodes.BAD_REQUEST, String(error))
    }
    const connection = new Connection<E>(transport, {
      id: (++this.nextId).toString(36),
      clientId,
      topics,
      maxQueuedBytes: this.maxQueuedBytes,
      counters: this.counters,
      onClosed: (closed, reason) => this.onClosed(closed, reason),
    })
    if (failure !== undefined) {
      connection.reject(failure.status, errorBody(failure))
      return connection
    }
    if (this.closing) {
      connection.reject(
        503,
        errorBody(
          new SseError(ErrorCodes.CLOSED, 'The hub is shutting down; reconnect to another node.'),
        ),
        { 'retry-after': '1' },
      )
      return connection
    }
    const ip = transport.remoteAddress
    if (ip !== undefined && this.maxPerIp !== null && (this.perIp.get(ip) ?? 0) >= this.maxPerIp) {
      this.counters.rejections++
      const error = new SseError(
        ErrorCodes.RATE_LIMITED,
        `Too many connections from ${ip} (maxConnectionsPerIp ${this.maxPerIp}); close some or retry later.`)
      connection.reject(429, errorBody(error), { 'retry-after': '5' })
      return connection
    }
    const refusal = this.makeRoom(clientId)
    if (refusal !== null) {
      this.counters.rejections++
      connection.reject(503, errorBody(refusal), { 'retry-after': '5' })
      return connection
    }
    connection.expiresAt = params.expiresAt
    const keys = [...topics]
    if (clientId !== undefined) keys.push(CLIENT_PREFIX + clientId)
    keys.push(ALL_KEY)
    const member: Member = {
      connection: connection as unknown as Connection,
      keys,
      openTopics: new Set(topics),
      cursor: null,
      queue: [],
      mark: 0,
      announced: false,
      resetPending: null,
    }
    // Register first (live events queue up), then ask the broker in the same tick: the broker's
    // snapshot and the queue overlap, and the cursor drops the overlap. No gap, no duplicate.
    this.register(member)
    this.broker.resume(keys, params.lastEventId).then(
      (resume) => this.openMember(member, resume),
      (error: unknown) => {
        this.reportError(asError(error))
        connection.reject(
          503,
          errorBody(
            new SseError(
              ErrorCodes.BROKER_UNAVAILABLE,
              'The history is unavailable right now; retry shortly.'),
          ),
          { 'retry-after': '2' },
        )
      },
    )
    return connection
  }

  /**
   * Ends every connection of `clientId`, on every node (reason `server-close`). Resolves with the
   * number of connections it had on this node.
   */
  async closeClient(clientId: string): Promise<number> {
    const local = this.clientIndex.get(CLIENT_PREFIX + clientId)?.size ?? 0
    await this.broker.command({ type: 'close-client', clientId })
    return local
  }

  /**
   * Revokes a client id on every node: its connections end (reason `revoked`) and the hub server
   * refuses its tokens issued until now. Resolves with the number of local connections it had.
   */
  async revokeClient(clientId: string): Promise<number> {
    const local = this.clientIndex.get(CLIENT_PREFIX + clientId)?.size ?? 0
    await this.broker.command({ type: 'revoke-client', clientId, at: Date.now() })
    return local
  }

  /** Number of local connections following `topic` (the "online count"). */
  subscriberCount(topic: string): number {
    return this.topicIndex.get(topic)?.size ?? 0
  }

  /** Number of local connections of `clientId`. */
  clientConnectionCount(clientId: string): number {
    return this.clientIndex.get(CLIENT_PREFIX + clientId)?.size ?? 0
  }

  /** The open connections, oldest first. */
  connections(): IterableIterator<Connection> {
    return this.members.keys()
  }

  /** Describes up to `limit` connections, oldest first. */
  describeConnections(limit = 1000): ConnectionInfo[] {
    const out: ConnectionInfo[] = []
    for (const connection of this.members.keys()) {
      if (out.length >= limit) break
      out.push({
        id: connection.id,
        clientId: connection.clientId,
        topics: connection.topics,
        connectedAt: new Date(connection.connectedAt).toISOString(),
        remoteAddress: connection.remoteAddress,
        queuedBytes: connection.queuedBytes,
      })
    }
    return out
  }

  /** Counters and gauges. */
  stats(): HubStats {
    return {
      connections: this.members.size,
      clientIds: this.clientIndex.size,
      topics: this.topicIndex.size,
      eventsPublished: this.counters.eventsPublished,
      eventsIn: this.counters.eventsIn,
      eventsOut: this.counters.eventsOut,
      bytesOut: this.counters.bytesOut,
      slowConsumerCloses: this.closedBy['slow-consumer'],
      evictions: this.counters.evictions,
      rejections: this.counters.rejections,
      closed: { ...this.closedBy },
    }
  }

  /**
   * Stops the hub: refuses new connections and publishes, ends every stream (reason `shutdown`;
   * clients reconnect elsewhere), stops the timer and closes the broker it created.
   */
  async close(): Promise<void> {
    if (this.closing) return
    this.closing = true
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    for (const connection of [...this.members.keys()]) connection.end('shutdown')
    if (this.ownsBroker) await this.broker.close()
  }

  private checkParams(params: SubscribeParams): { topics: string[]; clientId: string | undefined } {
    const topics = [
      ...new Set((params.topics ?? []).map((topic) => validateTopic(topic, this.limits))),
    ]
    const clientId =
      params.clientId === undefined ? undefined : validateClientId(params.clientId, this.limits)
    if (topics.length === 0 && clientId === undefined) {
      throw new SseError(
        ErrorCodes.BAD_REQUEST,
        'Give at least one topic or a client id, e.g. /events?topic=news or /events?clientId=user-42.')
    }
    if (topics.length > this.maxTopics) {
      throw new SseError(
        ErrorCodes.BAD_REQUEST,
        `A connection may follow at most ${this.maxTopics} topics, got ${topics.length}; open several connections or raise maxTopicsPerConnection.`)
    }
    return { topics, clientId }
  }

  private toRequest(input: PublishInput): PublishRequest {
    const bad = (message: string): SseError =>
      new SseError(ErrorCodes.BAD_REQUEST, message)
    if (typeof input !== 'object' || input === null)
      throw bad('The publish body must be a JSON object.')
    const keys: string[] = []
    if (input.topic !== undefined) {
      const topics = typeof input.topic === 'string' ? [input.topic] : input.topic
      if (!Array.isArray(topics)) throw bad('`topic` must be a string or an array of strings.')
      if (topics.length > this.maxTopicsPerPublish) {
        throw bad(
          `A publish may target at most ${this.maxTopicsPerPublish} topics, got ${topics.length}.`,
        )
      }
      for (const topic of topics as unknown[]) keys.push(validateTopic(topic, this.limits))
    }
    if (input.clientId !== undefined)
      keys.push(CLIENT_PREFIX + validateClientId(input.clientId, this.limits))
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
    // (Field by field, not spreads: this runs once per publish.)
    const request: PublishRequest = {
      keys: keys.length === 1 ? keys : [...new Set(keys)],
      data: dataToString(input.data),
    }
    if (input.event !== undefined) request.event = validateEventName(input.event, this.limits)
    if (input.retry !== undefined) request.retry = validateRetry(input.retry)
    if (input.close === true) request.close = true
    return request
  }

  /** Returns null when there is room (evicting if the policy says so), else the refusal. */
  private makeRoom(clientId: string | undefined): SseError | null {
    if (clientId !== undefined && this.maxPerClient !== null) {
      const own = this.clientIndex.get(CLIENT_PREFIX + clientId)
      if (own !== undefined && own.size >= this.maxPerClient) {
        if (this.overflow === 'reject') {
          return new SseError(
            ErrorCodes.LIMIT_REACHED,
            `Client ${JSON.stringify(clientId)} already has ${own.size} connections (maxConnectionsPerClient); close one or retry later.`)
        }
        this.evictLeastRecent(own.values())
      }
    }
    if (this.maxConnections !== null && this.members.size >= this.maxConnections) {
      if (this.overflow === 'reject') {
        return new SseError(
          ErrorCodes.LIMIT_REACHED,
          `The hub holds its maximum of ${this.maxConnections} connections (maxConnections); retry later.`)
      }
      this.evictLeastRecent(this.members.values())
    }
    return null
  }

  // O(n) in the candidates, but it runs only at a limit, never on the publish path.
  private evictLeastRecent(candidates: Iterable<Member>): void {
    let victim: Member | undefined
    for (const member of candidates) {
      if (victim === undefined || member.connection.lastWriteAt < victim.connection.lastWriteAt)
        victim = member
    }
    if (victim === undefined) return
    this.counters.evictions++
    victim.connection.end('evicted')
  }

  private register(member: Member): void {
    const ip = member.connection.remoteAddress
    if (ip !== undefined) this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1)
    this.members.set(member.connection, member)
    for (const key of member.keys) {
      if (key === ALL_KEY) continue
      const index = key.startsWith(CLIENT_PREFIX) ? this.clientIndex : this.topicIndex
      let set = index.get(key)
      if (set === undefined) index.set(key, (set = new Set()))
      set.add(member)
    }
  }

  private onClosed(connection: Connection, reason: CloseReason): void {
    const member = this.members.get(connection)
    if (member === undefined) return
    // Leave every index at once: a closed connection is never written to again.
    this.members.delete(connection)
    const ip = connection.remoteAddress
    if (ip !== undefined) {
      const count = (this.perIp.get(ip) ?? 1) - 1
      if (count <= 0) this.perIp.delete(ip)
      else this.perIp.set(ip, count)
    }
    member.queue = null
    for (const key of member.keys) {
      if (key === ALL_KEY) continue
      const index = key.startsWith(CLIENT_PREFIX) ? this.clientIndex : this.topicIndex
      const set = index.get(key)
      if (set === undefined) continue
      set.delete(member)
      if (set.size === 0) index.delete(key)
    }
    this.closedBy[reason]++
    if (member.announced) this.emit('closed', connection, reason)
  }

  private async openMember(member: Member, resume: Resume): Promise<void> {
    const { connection } = member
    if (connection.state === 'closed') return
    member.cursor = resume.cursor
    for (const key of resume.ended) member.openTopics.delete(key)
    const finishedBefore = connection.topics.length > 0 && member.openTopics.size === 0
    if (finishedBefore && resume.replay.length === 0) {
      // Every topic ended and the client saw each final event: 204 stops EventSource for good.
      connection.reject(204)
      return
    }
    const prelude: Buffer[] = []
    if (this.retryFrame !== null) prelude.push(this.retryFrame)
    if (resume.reset !== null) prelude.push(this.resetFrame(member, resume.reset.reason))
    connection.open(prelude)
    // Replay with backpressure: a long history is written as the client reads it, not buffered.
    const half = this.maxQueuedBytes / 2
    for (const item of resume.replay) {
      if (!isOpen(connection)) return
      this.write(member, item.publication, encodeFrame(item.publication, item.id))
      if (connection.queuedBytes > half) await connection.drained()
    }
    if (member.resetPending !== null)
      connection.writeFrame(this.resetFrame(member, member.resetPending))
    // Live events that arrived meanwhile; more may arrive while we wait for the socket.
    // (An index, not shift(): the queue may hold up to maxPendingEvents entries.)
    for (let i = 0; member.queue !== null && i < member.queue.length && isOpen(connection);) {
      const publication = member.queue[i++]!
      const id = member.cursor.advance(publication)
      if (id !== null) this.write(member, publication, encodeFrame(publication, id))
      if (connection.queuedBytes > half) await connection.drained()
    }
    if (!isOpen(connection)) return
    member.queue = null
    // The id-only frame: sets the client's last event id without dispatching an event, so a client
    // that drops before its first event still resumes exactly.
    connection.writeFrame(Buffer.from(`id: ${member.cursor.id}\n\n`))
    connection.live()
    if (!isOpen(connection)) return
    member.announced = true
    this.emit('connected', connection)
    if (connection.topics.length > 0 && member.openTopics.size === 0) connection.end('completed')
  }

  private resetFrame(member: Member, reason: string): Buffer {
    const { connection } = member
    const body = JSON.stringify({
      reason,
      topics: connection.topics,
      ...(connection.clientId === undefined ? {} : { clientId: connection.clientId }),
    })
    return Buffer.from(`event: ${RESET_EVENT}\n${encodeDataLines(body)}\n`)
  }

  /** Fan-out of one publication to the local connections that follow any of its keys. */
  private deliver(publication: Publication): void {
    this.counters.eventsIn++
    const pass = ++this.pass
    let reached = 0
    // One encoded frame per distinct id (one in all with the memory broker), shared by recipients.
    let frameId: string | null = null
    let frame: Buffer | null = null
    const visit = (member: Member): void => {
      if (member.mark === pass) return
      member.mark = pass
      reached++
      if (member.queue !== null) {
        if (member.queue.length >= this.maxPending) member.connection.destroy('slow-consumer')
        else member.queue.push(publication)
        return
      }
      const id = member.cursor!.advance(publication)
      if (id === null) return
      if (id !== frameId) {
        frameId = id
        frame = encodeFrame(publication, id)
      }
      this.write(member, publication, frame!)
    }
    if (publication.keys.includes(ALL_KEY)) {
      for (const member of this.members.values()) visit(member)
    } else {
      for (const key of publication.keys) {
        const set = (key.startsWith(CLIENT_PREFIX) ? this.clientIndex : this.topicIndex).get(key)
        if (set !== undefined) for (const member of set) visit(member)
      }
    }
    this.lastDelivered = publication
    this.lastReached = reached
  }

  private write(member: Member, publication: Publication, frame: Buffer): void {
    if (member.connection.writeFrame(frame)) this.counters.eventsOut++
    if (!publication.close) return
    for (const key of publication.keys) member.openTopics.delete(key)
    // Once live, a connection whose topics all ended completes; during the replay openMember does it.
    if (
      member.queue === null &&
      member.connection.topics.length > 0 &&
      member.openTopics.size === 0
    ) {
      member.connection.end('completed')
    }
  }

  private countMatching(keys: readonly string[]): number {
    if (keys.includes(ALL_KEY)) return this.members.size
    const seen = new Set<Member>()
    for (const key of keys) {
      const set = (key.startsWith(CLIENT_PREFIX) ? this.clientIndex : this.topicIndex).get(key)
      if (set !== undefined) for (const member of set) seen.add(member)
    }
    return seen.size
  }

  private runCommand(command: BrokerCommand): void {
    const set = this.clientIndex.get(CLIENT_PREFIX + command.clientId)
    const reason: CloseReason = command.type === 'revoke-client' ? 'revoked' : 'server-close'
    if (set !== undefined) for (const member of [...set]) member.connection.end(reason)
    if (command.type === 'revoke-client') this.emit('revoked', command.clientId, command.at)
  }

  private resetAll(reason: string): void {
    for (const member of this.members.values()) {
      if (member.queue !== null) member.resetPending = reason
      else member.connection.writeFrame(this.resetFrame(member, reason))
    }
  }

  /** @internal Reports an operational error to `error` listeners (the server's request errors too). */
  reportError(error: Error): void {
    // An 'error' event with no listener would throw; operational errors must never crash the hub.
    if (this.listenerCount('error') > 0) this.emit('error', error)
  }

  /** One timer for the whole hub: heartbeats on idle connections and the max-age sweep. */
  private startTimer(): void {
    const periods: number[] = []
    if (this.heartbeatMs !== null) periods.push(this.heartbeatMs / 2)
    if (this.maxAgeMs !== null) periods.push(this.maxAgeMs / 4)
    // At most 1 s: token expiry is checked by the same sweep (no timer per connection).
    periods.push(1_000)
    const tick = Math.max(5, Math.min(...periods))
    this.timer = setInterval(() => this.sweep(), tick)
    this.timer.unref()
  }

  private sweep(): void {
    const now = Date.now()
    if (this.maxAgeMs !== null) {
      const oldest = now - this.maxAgeMs
      // Members are in connect order: the expired ones are a prefix.
      for (const connection of this.members.keys()) {
        if (connection.connectedAt > oldest) break
        connection.end('timeout')
      }
    }
    const idleSince = this.heartbeatMs === null ? -Infinity : now - this.heartbeatMs / 2
    for (const connection of this.members.keys()) {
      if (connection.expiresAt !== undefined && connection.expiresAt <= now)
        connection.end('expired')
      else if (connection.state === 'open' && connection.lastWriteAt <= idleSince)
        connection.heartbeat()
    }
  }
}

/** A checked publish input, as the broker takes it. */
interface PublishRequest {
  keys: string[]
  data: string
  event?: string
  retry?: number
  close?: boolean
}

// A function, so that TypeScript does not narrow `state` across calls that may close the connection.
function isOpen(connection: Connection): boolean {
  return connection.state === 'open'
}

function validateRetryOption(value: number): number {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(
      `Expected \`retryMs\` to be a non-negative integer or null, got \`${String(value)}\``,
    )
  }
  return value
}

function encodeFrame(publication: Publication, id: string): Buffer {
  const event: SseEvent = { id, data: publication.data }
  if (publication.event !== undefined) event.event = publication.event
  if (publication.retry !== undefined) event.retry = publication.retry
  return Buffer.from(encodeEventText(event))
}

function closedError(): SseError {
  return new SseError(ErrorCodes.CLOSED, 'The hub is closed.')
}

/** A broker's refusal as the hub reports it: its own SseError, or 503 with the cause. */
function brokerError(error: unknown): SseError {
  if (isSseError(error)) return error
  return new SseError(
    ErrorCodes.BROKER_UNAVAILABLE,
    'The broker did not take the event; retry later.',
    { cause: error },
  )
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}

/** The JSON body of an HTTP error: `{"error": {"code", "message"}}`. */
export function errorBody(error: SseError): string {
  return JSON.stringify({ error: { code: error.code, message: error.message } })
}

/** Creates a {@link Hub}. */
export function createHub<E extends EventMap = EventMap>(options: HubOptions = {}): Hub<E> {
  return new Hub<E>(options)
}
