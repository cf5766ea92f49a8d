/**
 * The broker seam: where publications are ordered, numbered, kept as history and delivered to every
 * hub node. The hub never parses event ids; the broker decides their form (the memory broker uses
 * `<epoch>-<seq>`, a Redis broker a cursor vector over its partitions) and hands the hub a
 * {@link Cursor} per connection that turns publications into ids and drops duplicates.
 *
 * Routing keys: the hub maps every target onto plain string keys before they reach the broker: a
 * topic `T` is the key `T`, a client id `C` is `@c/C`, a broadcast is `@all`. User topics cannot
 * start with `@`, so the spaces never collide, and a broker needs to know nothing about targets.
 */

/** What the hub asks a broker to publish. */
export interface PublishRequest {
  /** Routing keys (topics, `@c/<clientId>`, `@all`), deduplicated, at least one. */
  readonly keys: readonly string[]
  /** Event type name. */
  readonly event?: string
  /** Payload, already a string. */
  readonly data: string
  /** Reconnection delay to send with the event, in ms. */
  readonly retry?: number
  /** This is the last event of its topic keys (a finite topic). */
  readonly close?: boolean
  /**
   * Publishes at most once per key within the broker's idempotency window: a request whose key
   * was seen returns the first one's publication (`duplicate: true`) and publishes nothing; a
   * different event under a used key is refused (`ERR_SSE_CONFLICT`).
   */
  readonly idempotencyKey?: string
}

/**
 * A published event as the broker numbered it. Brokers may return a subtype with their own
 * position fields; only their own {@link Cursor} reads those.
 */
export interface Publication {
  /** Broker-assigned id; increases in the broker's order. Opaque to the hub and clients. */
  readonly id: string
  /** Routing keys it was published to. */
  readonly keys: readonly string[]
  /** Event type name. */
  readonly event: string | undefined
  /** Payload. */
  readonly data: string
  /** Reconnection delay, in ms. */
  readonly retry: number | undefined
  /** True on the last event of a finite topic. */
  readonly close: boolean
  /** Publish time, ms since the epoch. */
  readonly time: number
  /**
   * Set only on what {@link Broker.publish} returns for an idempotency key already used: this
   * is the first publish's id, and nothing new was published.
   */
  readonly duplicate?: true
}

/** One connection's position in the broker's log. Created by {@link Broker.resume}. */
export interface Cursor {
  /**
   * Moves past `publication` and returns the SSE id that names the new position, or `null` when
   * the cursor is already at or past it (a duplicate from the history/live overlap: skip it).
   */
  advance(publication: Publication): string | null
  /** The SSE id that names the current position (sent in id-only frames). */
  readonly id: string
}

/** Why a connection's history could not be replayed exactly. */
export type ResetReason =
  /** The id is older than the retained history: events were trimmed. */
  | 'expired'
  /** The id is from another epoch: the broker restarted or lost its history. */
  | 'epoch'
  /** The id is malformed or ahead of the log. */
  | 'unknown'

/**
 * Where a new subscription (one without a `Last-Event-ID`) starts, besides live events:
 * `start` — every event of its keys the history still holds; `newest` — the latest event of each
 * of its keys; a number `N` — the last N events of its keys. Then live, in every case.
 */
export type StartFrom = 'start' | 'newest' | number

/** What a broker knows of a topic: its latest event in the history, and whether it ended. */
export interface TopicState {
  /** The SSE id of its latest event still in the history, or `null` when it holds none. */
  readonly lastEventId: string | null
  /** True when its final event was published (and is still remembered). */
  readonly ended: boolean
}

/** One replayed event and the SSE id to send with it. */
export interface ReplayItem {
  /** The event. */
  readonly publication: Publication
  /** The id to send with it. */
  readonly id: string
}

/** What a connection missed, as {@link Broker.resume} found it. */
export interface Resume {
  /** The connection's cursor, positioned after the replay (live events at or before it are dropped). */
  readonly cursor: Cursor
  /** Events to send before live ones, in order, without duplicates. */
  readonly replay: readonly ReplayItem[]
  /** Set when history could not be replayed exactly: the client must reload state. */
  readonly reset: { readonly reason: ResetReason; readonly keys: readonly string[] } | null
  /**
   * Topic keys that have ended (their final event was published) and whose final event this
   * connection has already received: nothing more will come on them.
   */
  readonly ended: ReadonlySet<string>
}

/** A command that every hub node must run (e.g. closing a client's connections everywhere). */
export type BrokerCommand =
  | { readonly type: 'close-client'; readonly clientId: string }
  /** Close the client's connections and refuse its tokens issued until `at` (ms since the epoch). */
  | { readonly type: 'revoke-client'; readonly clientId: string; readonly at: number }
  /**
   * A message for the parts built on the hub on every node (e.g. the relay's "abort generation
   * X", which only the node that runs X can act on): the hub emits it as its `signal` event.
   */
  | { readonly type: 'signal'; readonly name: string; readonly data: string }

/** Where a broker delivers what it reads: the hub. */
export interface BrokerSink {
  /** A publication from any node, in log order. */
  publication(publication: Publication): void
  /**
   * At most how many local connections a publication to `keys` reaches (a sum over the keys, so
   * cheap): a broker may hold a read back briefly to write it together with the next when many
   * connections would otherwise pay a socket write each (the Redis broker's read coalescing).
   * Optional: without it a broker assumes many.
   */
  reach?(keys: readonly string[]): number
  /** A command from any node. */
  command(command: BrokerCommand): void
  /**
   * Continuity was lost for every connection of this node (e.g. Redis restarted without its data):
   * the hub tells each connection with a reset event. Publications of the new log follow.
   * `id` names the position right before them: a {@link Broker.resume} from it replays exactly the
   * publications delivered after this reset (it is the reset event's SSE id).
   */
  reset(reason: ResetReason, id: string): void
  /**
   * The broker hit an operational error that is not an outage (e.g. a malformed entry it skipped);
   * it keeps running.
   */
  error(error: Error): void
  /**
   * The broker lost its backend (Redis went away): publishes fail and live events from other
   * nodes wait until {@link BrokerSink.recovered}. Called once per outage, when the broker goes
   * from working to failing, never once per retry; `error` says why (an `SseError`
   * `ERR_SSE_BROKER_UNAVAILABLE` whose `cause` is the backend's error). A broker that cannot fail
   * (the memory broker) never calls it.
   */
  unavailable(error: Error): void
  /**
   * The broker works again after {@link BrokerSink.unavailable}: it reads and publishes. Called
   * once per outage, after its `unavailable`. (Whether events were lost meanwhile is told by
   * {@link BrokerSink.reset}, not here.)
   */
  recovered(): void
}

/** The broker's health, for `/healthz`. */
export interface BrokerHealth {
  /** True when publishes can succeed now. */
  readonly ok: boolean
  /** Broker name, e.g. `memory`, `redis`. */
  readonly broker: string
  /**
   * Free-form details (history size, connection state...). They describe the present: an error
   * shown while the broker is down is gone once it has recovered.
   */
  readonly details?: Readonly<Record<string, unknown>>
}

/** One local connection as a node reports it to the cluster's presence. */
export interface PresenceConnection {
  /** Connection id, unique on its node. */
  readonly id: string
  /** Client id, if any. */
  readonly clientId: string | undefined
  /** Topics followed. */
  readonly topics: readonly string[]
  /** Connected since, ms since the epoch. */
  readonly connectedAt: number
  /** The client's address (a trusted proxy's forwarded one included). */
  readonly remoteAddress: string | undefined
}

/** A count over the cluster: the total and each live node's share. */
export interface PresenceCount {
  /** Sum over every live node. */
  readonly total: number
  /** Each live node's share, by node id (nodes with none included). */
  readonly nodes: Readonly<Record<string, number>>
}

/** A live node as the cluster sees it: its id and its last report. */
export interface NodeReport {
  /** Node id. */
  readonly node: string
  /** When the report was written, ms since the epoch. */
  readonly reportedAt: number
  /** Its report (the hub's stats). */
  readonly stats: object
}

/** What a hub gives its broker's presence: its node id and a way to read its stats. */
export interface PresenceNode {
  /** Reads the node's stats for its report (called at each heartbeat). */
  stats(): object
}

/**
 * Cluster-wide presence: who is connected to which node, kept where every node can read it (for
 * the Redis broker: in Redis, under keys that expire, so a dead node's entries vanish within
 * {@link Presence.ttlMs}). The hub reports its joins and leaves; it answers the online counts,
 * the connection list and the per-node stats from here. A broker for one process has none.
 */
export interface Presence {
  /** This node's id. */
  readonly node: string
  /** How long a dead node's entries may outlive it, in ms (the documented bound). */
  readonly ttlMs: number
  /** Starts reporting (called by the hub once the broker is started). */
  start(node: PresenceNode): void
  /** A local connection joined. */
  joined(connection: PresenceConnection): void
  /** A local connection left (the same object that joined). */
  left(connection: PresenceConnection): void
  /** Connections following `topic` on every live node. */
  topic(topic: string): Promise<PresenceCount>
  /** Connections of `clientId` on every live node. */
  client(clientId: string): Promise<PresenceCount>
  /** Up to `limit` connections of other live nodes, each with its node. */
  connections(limit: number): Promise<(PresenceConnection & { readonly node: string })[]>
  /** Every live node's last report, this one's included. */
  nodes(): Promise<NodeReport[]>
  /** Removes this node's entries (a clean shutdown) and stops reporting. */
  close(): Promise<void>
}

/**
 * The interface every broker implements (memory now, Redis for several nodes). A contract test
 * suite (`test/broker/contract.ts`) runs against each implementation.
 */
export interface Broker {
  /** Connects the broker to its hub. Called once, before any other method. */
  start(sink: BrokerSink): Promise<void>
  /**
   * Appends a publication to the log and resolves once it is durable in the broker's terms. The
   * publication reaches every node's sink (this one included) in log order.
   */
  publish(request: PublishRequest): Promise<Publication>
  /**
   * Optional: {@link Broker.publish} done synchronously, for a broker that numbers and delivers an
   * event in the calling tick (the memory broker). The hub then publishes without a promise per
   * event. Throws where `publish` would reject.
   */
  publishNow?(request: PublishRequest): Publication
  /**
   * Resolves what a connection following `keys` missed since `lastEventId` (or, without one, what
   * `from` asks for; without either, nothing: it starts live). `lastEventId` wins over `from`. Must snapshot the live position **synchronously**, in the same tick as the call:
   * the hub registers the connection first and queues live publications while this resolves, and
   * the cursor drops the overlap.
   */
  resume(
    keys: readonly string[],
    lastEventId: string | undefined,
    from?: StartFrom,
  ): Promise<Resume>
  /**
   * Optional: the latest event of topic key `key` still in the history, and whether the topic
   * ended (for `GET /topics/{topic}`). Without it, the hub knows only the online count.
   */
  topicState?(key: string): Promise<TopicState>
  /** Runs `command` on every node (this one included). */
  command(command: BrokerCommand): Promise<void>
  /** Health for `/healthz`. */
  health(): BrokerHealth
  /** Cluster-wide presence, for a broker that serves several nodes (absent: one node). */
  readonly presence?: Presence
  /** Stops the broker; pending work is abandoned. */
  close(): Promise<void>
}
