/**
 * The hub: the facade that wires its parts together. Options are resolved in hub-options.ts,
 * publish inputs checked in publish-input.ts, connections indexed and admitted in registry.ts,
 * publications fanned out in fan-out.ts, new streams replayed in replay.ts, and the one timer
 * runs in sweep.ts. The hub knows topics, ids and replay, not HTTP: reading a request is
 * connection/subscribe-request.ts's job, and a refusal is an error code its connection answers.
 */
import type {
  Broker,
  BrokerCommand,
  NodeReport,
  PresenceConnection,
  PresenceCount,
  Publication,
  StartFrom,
} from '../broker/broker.js'
import { MemoryBroker } from '../broker/memory.js'
import { defaultNodeId } from '../broker/node-id.js'
import {
  Connection,
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
import { fetchStreamRequest, nodeStreamRequest } from '../connection/subscribe-request.js'
import type { Transport } from '../connection/transport.js'
import { ErrorCodes, SseError, isSseError } from '../errors.js'
import { drainConnections } from './drain.js'
import { TypedEmitter } from './emitter.js'
import { FanOut } from './fan-out.js'
import { resolveHubOptions, type HubOptions, type ResolvedHubOptions } from './hub-options.js'
import { createMember, type HubCounters } from './member.js'
import { toPublishRequest, toPublishRequests, type PublishRequest } from './publish-input.js'
import { Registry } from './registry.js'
import { resetAll, startMember, type ReplayContext } from './replay.js'
import { startSweep } from './sweep.js'
import type {
  ClusterConnectionInfo,
  ConnectionInfo,
  TopicInfo,
  HubEvents,
  HubStats,
  PublishInput,
  PublishResult,
  PublishTarget,
  SubscribeParams,
  TypedPublishInput,
} from './types.js'
import { checkSubscription, validateStartFrom } from './validate.js'

/** Seconds a refused client waits before it retries at a connection limit. */
const LIMIT_RETRY_AFTER_S = 5
/** Seconds a client waits before it reconnects (to another node) while the hub shuts down. */
const CLOSING_RETRY_AFTER_S = 1

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

/**
 * The hub: a registry of connections by topic and client id, the publish path and the
 * subscribe -> replay -> live path. Embed it in any server, or use `createHubServer`.
 */
export class Hub<E extends EventMap = EventMap> extends TypedEmitter<HubEvents> {
  /** The broker behind this hub. */
  readonly broker: Broker
  /** Resolves when the broker is started; publishes wait for it. */
  readonly ready: Promise<void>
  /** This node's id: the broker's presence's, else `<hostname>:<pid>`. */
  readonly node: string
  private readonly ownsBroker: boolean
  private readonly options: ResolvedHubOptions
  private readonly counters: HubCounters = {
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
  private readonly registry: Registry
  private readonly fanOut: FanOut
  private readonly replay: ReplayContext
  // One listener for every connection, not a closure per connection.
  private readonly closedListener = (connection: Connection, reason: CloseReason): void =>
    this.onClosed(connection, reason)
  private timer: NodeJS.Timeout | null
  private nextId = 0
  /** When the broker reported an outage that has not ended yet (ms since the epoch). */
  private brokerDownAt: number | null = null
  private closing = false
  private started = false

  /** @throws {RangeError} or {@link TypeError} for a bad option, naming it (see `HUB_DEFAULTS`). */
  constructor(options: HubOptions = {}) {
    super()
    const resolved = resolveHubOptions(options)
    this.options = resolved
    this.ownsBroker = options.broker === undefined
    this.broker = options.broker ?? new MemoryBroker(options)
    this.node = this.broker.presence?.node ?? defaultNodeId()
    this.registry = new Registry(resolved, this.counters, this.broker.presence ?? null)
    this.fanOut = new FanOut(this.registry, this.counters, resolved.maxPendingEvents)
    this.replay = {
      registry: this.registry,
      broker: this.broker,
      counters: this.counters,
      retryFrame: resolved.retryMs === null ? null : Buffer.from(`retry: ${resolved.retryMs}\n\n`),
      maxQueuedBytes: resolved.maxQueuedBytes,
      connected: (connection) => this.emit('connected', connection),
      reportError: (error) => this.reportError(error),
    }
    this.ready = this.broker.start({
      publication: (publication) => this.fanOut.deliver(publication),
      reach: (keys) => this.fanOut.reachBound(keys),
      command: (command) => this.runCommand(command),
      reset: (reason, id) => resetAll(this.registry.members.values(), reason, id),
      error: (error) => this.reportError(error),
      unavailable: (error) => this.brokerFailed(error),
      recovered: () => this.brokerRecovered(),
    })
    this.ready.then(
      () => {
        this.started = true
        this.broker.presence?.start({ stats: () => this.stats() })
      },
      () => {},
    )
    // A failed start is reported through `ready` (the server awaits it) and as an error event.
    this.ready.catch((error: unknown) => this.reportError(asError(error)))
    this.timer = startSweep(this.registry.members, resolved)
  }

  /**
   * Publishes an event; resolves once the broker has it, with its id and the number of local
   * connections reached.
   * @throws {SseError} `ERR_SSE_BAD_REQUEST` / `ERR_SSE_INVALID_FIELD` for a bad input,
   * `ERR_SSE_CLOSED` after {@link Hub.close}, `ERR_SSE_BROKER_UNAVAILABLE`.
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
    const requests = toPublishRequests(inputs, this.options)
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
      const cause = asError(reason)
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
    return this.commitNow(toPublishRequest(input, this.options))
  }

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
   * the hub server (`topic`, `clientId`, `lastEventId`); a non-empty `Last-Event-ID` header wins
   * over the query and over `params`. Bad input or a limit is answered on `res` (an error code
   * and its status) and the returned connection is closed.
   *
   * The hub writes to `res` directly: keep compression and other buffering middleware off this
   * route, or events sit in a buffer instead of reaching the client.
   */
  subscribe(req: NodeRequest, res: NodeResponse, params?: SubscribeParams): Connection<E> {
    return this.attach(createNodeTransport(req, res), nodeStreamRequest(req, params))
  }

  /**
   * Subscribes a fetch-style `Request` (Hono, Next.js route handlers): returns the connection and
   * the `Response` to return from the handler. Reads the request as {@link Hub.subscribe} does.
   */
  subscribeWeb(
    request: Request,
    params?: SubscribeParams,
    /** The peer's address (e.g. Hono's `getConnInfo(c).remote.address`), for the per-IP limit. */
    remoteAddress?: string,
  ): { connection: Connection<E>; response: Promise<Response> } {
    const transport = createFetchTransport(remoteAddress)
    const connection = this.attach(transport, fetchStreamRequest(request, params))
    return { connection, response: transport.response }
  }

  /**
   * Subscribes a custom {@link Transport}: the seam for other servers. `params.lastEventId` is
   * taken as is: give the request's `Last-Event-ID` header when it is a non-empty string, else an
   * id from the query, as {@link Hub.subscribe} does.
   */
  attach(transport: Transport, params: SubscribeParams): Connection<E> {
    let topics: string[]
    let clientId: string | undefined
    let from: StartFrom | undefined
    let failure: SseError | undefined
    try {
      ;({ topics, clientId } = checkSubscription(params.topics, params.clientId, this.options))
      from = validateStartFrom(params.from)
    } catch (error) {
      topics = []
      failure = isSseError(error) ? error : new SseError(ErrorCodes.BAD_REQUEST, String(error))
    }
    const connection = new Connection<E>(transport, {
      id: (++this.nextId).toString(36),
      clientId,
      topics,
      maxQueuedBytes: this.options.maxQueuedBytes,
      counters: this.counters,
      onClosed: this.closedListener,
      remoteAddress: params.remoteAddress ?? transport.remoteAddress,
    })
    if (failure !== undefined) {
      connection.refuse(failure)
      return connection
    }
    if (this.closing) {
      connection.refuse(
        new SseError(ErrorCodes.CLOSED, 'The hub is shutting down; reconnect to another node.'),
        CLOSING_RETRY_AFTER_S,
      )
      return connection
    }
    const refusal = this.registry.admit(clientId, connection.remoteAddress)
    if (refusal !== null) {
      this.counters.rejections++
      connection.refuse(refusal, LIMIT_RETRY_AFTER_S)
      return connection
    }
    connection.expiresAt = params.expiresAt
    const member = createMember(connection as unknown as Connection, topics, clientId)
    startMember(this.replay, member, params.lastEventId, from)
    return connection
  }

  /**
   * Ends every connection of `clientId`, on every node (reason `server-close`). Resolves with the
   * number of connections it had on every node (as {@link Hub.clientPresence} counts them).
   */
  async closeClient(clientId: string): Promise<number> {
    const { total } = await this.clientPresence(clientId)
    await this.broker.command({ type: 'close-client', clientId })
    return total
  }

  /**
   * Revokes a client id on every node: its connections end (reason `revoked`) and the hub server
   * refuses its tokens issued until now. Resolves with the number of local connections it had.
   */
  async revokeClient(clientId: string): Promise<number> {
    const local = this.clientConnectionCount(clientId)
    await this.broker.command({ type: 'revoke-client', clientId, at: Date.now() })
    return local
  }

  /**
   * Connections following `topic` on every node, and each node's share (the cluster's online
   * count). With a broker for one process (memory), this node's count.
   * @throws {SseError} `ERR_SSE_BROKER_UNAVAILABLE` when the presence cannot be read.
   */
  topicPresence(topic: string): Promise<PresenceCount> {
    const presence = this.broker.presence
    if (presence === undefined) return Promise.resolve(this.alone(this.subscriberCount(topic)))
    return presence.topic(topic).catch(presenceError)
  }

  /**
   * Connections of `clientId` on every node, and each node's share.
   * @throws {SseError} `ERR_SSE_BROKER_UNAVAILABLE` when the presence cannot be read.
   */
  clientPresence(clientId: string): Promise<PresenceCount> {
    const presence = this.broker.presence
    if (presence === undefined)
      return Promise.resolve(this.alone(this.clientConnectionCount(clientId)))
    return presence.client(clientId).catch(presenceError)
  }

  /**
   * Up to `limit` connections of every node, this node's first (oldest first), each with its
   * node. Another node's `queuedBytes` is not known here: it is reported as 0.
   * @throws {SseError} `ERR_SSE_BROKER_UNAVAILABLE` when the presence cannot be read.
   */
  async describeClusterConnections(limit = 1000): Promise<ClusterConnectionInfo[]> {
    const out: ClusterConnectionInfo[] = this.describeConnections(limit).map((info) => ({
      ...info,
      node: this.node,
    }))
    const presence = this.broker.presence
    if (presence === undefined || out.length >= limit) return out
    const others = await presence.connections(limit - out.length).catch(presenceError)
    for (const connection of others)
      out.push({ ...describeConnection(connection, 0), node: connection.node })
    return out
  }

  /**
   * Every live node's last report of its stats, this node's (current) first.
   * @throws {SseError} `ERR_SSE_BROKER_UNAVAILABLE` when the presence cannot be read.
   */
  clusterNodes(): Promise<NodeReport[]> {
    const presence = this.broker.presence
    if (presence === undefined) {
      return Promise.resolve([{ node: this.node, reportedAt: Date.now(), stats: this.stats() }])
    }
    return presence.nodes().catch(presenceError)
  }

  /**
   * What is known of `topic`: `ended` (its final event was published), `open` (events in the
   * history, or subscribers now), or `unknown`; the id of its latest event in the history; and
   * its subscribers on every node. Lets an app tell "still generating", "done" and "never heard
   * of it" before it subscribes.
   * @throws {SseError} `ERR_SSE_BROKER_UNAVAILABLE` when the broker or the presence cannot be read.
   */
  async topicState(topic: string): Promise<TopicInfo> {
    const [known, presence] = await Promise.all([
      this.broker.topicState === undefined
        ? Promise.resolve({ lastEventId: null, ended: false })
        : this.broker.topicState(topic).catch((error: unknown) => {
            throw brokerError(error)
          }),
      this.topicPresence(topic),
    ])
    const state = known.ended
      ? 'ended'
      : known.lastEventId !== null || presence.total > 0
        ? 'open'
        : 'unknown'
    return {
      topic,
      state,
      lastEventId: known.lastEventId,
      subscribers: presence.total,
      nodes: presence.nodes,
    }
  }

  /** Number of local connections following `topic` (the "online count"). */
  subscriberCount(topic: string): number {
    return this.registry.topics.get(topic)?.size ?? 0
  }

  /** Number of local connections of `clientId`. */
  clientConnectionCount(clientId: string): number {
    return this.registry.ofClient(clientId)?.size ?? 0
  }

  /** The open connections, oldest first. */
  connections(): IterableIterator<Connection> {
    return this.registry.members.keys()
  }

  /** Describes up to `limit` connections, oldest first. */
  describeConnections(limit = 1000): ConnectionInfo[] {
    const out: ConnectionInfo[] = []
    for (const connection of this.registry.members.keys()) {
      if (out.length >= limit) break
      out.push(describeConnection(connection, connection.queuedBytes))
    }
    return out
  }

  /** Counters and gauges. */
  stats(): HubStats {
    return {
      connections: this.registry.members.size,
      clientIds: this.registry.clients.size,
      topics: this.registry.topics.size,
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
   * clients reconnect elsewhere), stops the timer and closes the broker it created. With
   * `spreadMs`, the streams are ended in waves across that time, each told a jittered `retry:`
   * first, so that their reconnects do not arrive at once (see drain.ts); they stay live until
   * their wave.
   */
  async close(options: { readonly spreadMs?: number } = {}): Promise<void> {
    if (this.closing) return
    this.closing = true
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    const spreadMs = options.spreadMs ?? 0
    await drainConnections([...this.registry.members.keys()], { spreadMs })
    if (this.ownsBroker) await this.broker.close()
  }

  /**
   * @internal Reports an operational error (the server's request errors too): to `error`
   * listeners, or, with none, to stderr. Never dropped, and never thrown: an `'error'` event with
   * no listener would throw, and operational errors must not crash the hub.
   */
  reportError(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error)
    else console.error("[ssehub] error (no 'error' listener on the hub):", error)
  }

  private brokerFailed(error: Error): void {
    // A broker reports each outage once; the guard keeps one that repeats itself from doubling it.
    if (this.brokerDownAt !== null) return
    this.brokerDownAt = Date.now()
    if (this.listenerCount('brokerFailed') > 0) this.emit('brokerFailed', error)
    else this.reportError(error)
  }

  private brokerRecovered(): void {
    if (this.brokerDownAt === null) return
    const downMs = Date.now() - this.brokerDownAt
    this.brokerDownAt = null
    this.emit('brokerRecovered', downMs)
  }

  // Async: a bad input rejects the returned promise, it never throws at the caller.
  private async publishInput(input: PublishInput): Promise<PublishResult> {
    return this.publishRequest(toPublishRequest(input, this.options))
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
    // A retry under a used idempotency key: nothing was published, nobody was reached now.
    if (publication.duplicate === true)
      return { id: publication.id, localConnections: 0, duplicate: true }
    this.counters.eventsPublished++
    const { fanOut } = this
    return {
      id: publication.id,
      // A synchronous broker delivered it inside the call: deliver() counted the connections.
      localConnections:
        publication === fanOut.lastDelivered
          ? fanOut.lastReached
          : fanOut.countMatching(publication.keys),
    }
  }

  /** A count on a hub that is its whole cluster. */
  private alone(count: number): PresenceCount {
    return { total: count, nodes: { [this.node]: count } }
  }

  private onClosed(connection: Connection, reason: CloseReason): void {
    // Leave every index at once: a closed connection is never written to again. (A connection
    // refused before it was registered has no member and is not counted.)
    const member = this.registry.remove(connection)
    if (member === undefined) return
    this.closedBy[reason]++
    if (reason === 'slow-consumer' || reason === 'evicted') this.emit('dropped', connection, reason)
    if (member.announced) this.emit('closed', connection, reason)
  }

  /**
   * Sends a signal to every node's hub (this one included): each emits `signal` with `name` and
   * `data`. For the parts built on the hub that must reach whichever node holds something (the
   * relay aborts a generation on the node that runs it). Delivered in the broker's order, at most
   * once per node; a node that is down misses it.
   */
  async signal(name: string, data: string): Promise<void> {
    await this.broker.command({ type: 'signal', name, data })
  }

  private runCommand(command: BrokerCommand): void {
    if (command.type === 'signal') {
      this.emit('signal', command.name, command.data)
      return
    }
    const set = this.registry.ofClient(command.clientId)
    const reason: CloseReason = command.type === 'revoke-client' ? 'revoked' : 'server-close'
    if (set !== undefined) for (const member of [...set]) member.connection.end(reason)
    if (command.type === 'revoke-client') this.emit('revoked', command.clientId, command.at)
  }
}

/** A connection as `GET /clients` lists it (a local one, or another node's from the presence). */
function describeConnection(connection: PresenceConnection, queuedBytes: number): ConnectionInfo {
  return {
    id: connection.id,
    clientId: connection.clientId,
    topics: connection.topics,
    connectedAt: new Date(connection.connectedAt).toISOString(),
    remoteAddress: connection.remoteAddress,
    queuedBytes,
  }
}

function presenceError(error: unknown): never {
  if (isSseError(error)) throw error
  throw new SseError(
    ErrorCodes.BROKER_UNAVAILABLE,
    `The cluster's presence could not be read (${asError(error).message}); retry later.`,
    { cause: error },
  )
}

function closedError(): SseError {
  return new SseError(ErrorCodes.CLOSED, 'The hub is closed.')
}

/** A broker's refusal as the hub reports it: its own SseError, or unavailable with the cause. */
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

/** Creates a {@link Hub}. */
export function createHub<E extends EventMap = EventMap>(options: HubOptions = {}): Hub<E> {
  return new Hub<E>(options)
}
