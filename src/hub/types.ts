/**
 * The hub's public shapes: what a publish targets and carries, what a subscription asks for, and
 * what the hub reports (results, stats, lifecycle events). Types only, plus the reserved name of
 * the hub's own reset event.
 */
import type { CloseReason, Connection, EventMap } from '../connection/connection.js'
import type { StreamRequest } from '../connection/subscribe-request.js'

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
  /**
   * Publish at most once per key: a retry with the same key (and the same event) within the
   * broker's idempotency window returns the first publish's id and publishes nothing new; another
   * event under a used key is refused (`ERR_SSE_CONFLICT`). A UUID per event is the usual key.
   */
  readonly idempotencyKey?: string
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
  /** Publish at most once per key (see {@link PublishInput.idempotencyKey}). */
  readonly idempotencyKey?: string
}

/** What `Hub.publish` resolves with. */
export interface PublishResult {
  /** The event id the broker assigned. */
  readonly id: string
  /**
   * How many connections of this node (process) it reached. Other nodes deliver it to theirs
   * and are not counted: `GET /topics/{topic}` gives the cluster's online count.
   */
  readonly localConnections: number
  /** Set when the idempotency key was used already: `id` is the first publish's, nothing new went out. */
  readonly duplicate?: true
}

/**
 * What a connection follows and where it resumes from: a {@link StreamRequest} (as read from a
 * request's query) plus what only the application or the server knows.
 */
export interface SubscribeParams extends Omit<StreamRequest, 'topics'> {
  /** Topics to follow. */
  readonly topics?: readonly string[]
  /** End the stream at this time, ms since the epoch (a token's expiry). */
  readonly expiresAt?: number
  /**
   * The client's address, when the server knows better than the socket (a trusted proxy's
   * `X-Forwarded-For`): the per-IP limit and `describeConnections` use it. Default: the
   * transport's peer address.
   */
  readonly remoteAddress?: string
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

/** What `GET /topics/{topic}` answers: see `Hub.topicState`. */
export interface TopicInfo {
  /** The topic. */
  readonly topic: string
  /** `ended`: its final event was published; `open`: it has events or subscribers; else `unknown`. */
  readonly state: 'open' | 'ended' | 'unknown'
  /** The id of its latest event still in the history (`null` when none). */
  readonly lastEventId: string | null
  /** Its subscribers on every node (the online count). */
  readonly subscribers: number
  /** Each node's share of them. */
  readonly nodes: Readonly<Record<string, number>>
}

/** A connection of any node, as `GET /clients` lists it on a cluster. */
export interface ClusterConnectionInfo extends ConnectionInfo {
  /** The node that holds it. */
  readonly node: string
}

/**
 * Why the hub closed a connection to protect the others: it did not read fast enough
 * (`maxQueuedBytes`), or it was the least recently active one at a connection limit under
 * `overflow: 'evict'`.
 */
export type DropReason = Extract<CloseReason, 'slow-consumer' | 'evicted'>

/**
 * The hub's events. Nothing is printed unless asked: an application (or `ssehub serve`'s logger)
 * listens to what it wants to report. The one exception is an operational error nobody listens
 * to (`error`, or `brokerFailed` without a listener): written to stderr rather than dropped.
 */
export type HubEvents = {
  /** A stream opened (after its replay). */
  connected: [connection: Connection]
  /** A stream closed, with the reason. Paired with `connected`: a stream closed during its replay has no `closed`. */
  closed: [connection: Connection, reason: CloseReason]
  /**
   * The hub closed a connection to protect the others: a slow consumer, or an eviction at a
   * limit. Emitted for every such close, also during a replay (where `closed` is not), before
   * `closed`. The connection's `id`, `clientId` and `remoteAddress` say whose it was. One per
   * connection, so a flood of slow consumers is a flood of events: sample them before logging.
   */
  dropped: [connection: Connection, reason: DropReason]
  /** A client id's tokens were revoked (on any node) until `at`: the server refuses them. */
  revoked: [clientId: string, at: number]
  /** A `Hub.signal()` sent by any node (this one included), in the broker's order. */
  signal: [name: string, data: string]
  /**
   * The broker lost its backend (e.g. Redis went away): publishes fail with
   * `ERR_SSE_BROKER_UNAVAILABLE` and live events from other nodes wait. Once per outage, with the
   * cause (an `SseError` `ERR_SSE_BROKER_UNAVAILABLE`; its `cause` is the backend's error). With
   * no `brokerFailed` listener the error goes to `error` instead, so an outage is never silent.
   */
  brokerFailed: [error: Error]
  /**
   * The broker works again after `brokerFailed`, `downMs` after it failed. Connections stay open
   * across the outage; those that may have missed events got a reset event (see `RESET_EVENT`).
   */
  brokerRecovered: [downMs: number]
  /**
   * An operational error (a failed resume, a request handler's bug, broker trouble that is not
   * an outage). The hub keeps running. With no listener, the hub writes it to stderr rather than
   * drop it.
   */
  error: [error: Error]
}

/** The hub's own event names. Application events cannot use the `ssehub.` prefix. */
export const RESET_EVENT = 'ssehub.reset'
