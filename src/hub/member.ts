/**
 * What the hub keeps per connection (a {@link Member}), the routing keys that address it, and the
 * counters the hub's parts share. Internal to the hub.
 */
import type { Cursor, Publication } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'

/**
 * The routing key of a broadcast. Routing keys are what the broker sees (see broker.ts): a topic
 * `T` is `T`, a client id `C` is `@c/C`, everyone is `@all`; user topics cannot start with `@`.
 */
export const ALL_KEY = '@all'
/** The prefix of a client id's routing key. */
export const CLIENT_PREFIX = '@c/'

/** Per-connection state the hub keeps next to the {@link Connection}. */
export interface Member {
  /** The open stream. */
  readonly connection: Connection
  /** Routing keys: topics, `@c/<clientId>`, `@all`. */
  readonly keys: readonly string[]
  /** Topics not finished yet; when a connection with topics has none left, it completes. */
  readonly openTopics: Set<string>
  /** Its position in the broker's log; set once the broker answered the resume. */
  cursor: Cursor | null
  /** Live publications that arrived while the history replayed; `null` once live. */
  queue: Publication[] | null
  /** The fan-out pass that last visited this member (dedupes multi-key publications). */
  mark: number
  /** Set once `connected` was emitted, so that `closed` pairs with it. */
  announced: boolean
  /**
   * A broker-wide reset arrived while the history replayed: sent after the replay, before the
   * queued live events that arrived after it (`at`: the queue's length when it arrived).
   */
  resetPending: PendingReset | null
}

/** A broker-wide reset waiting for the end of a member's replay. */
export interface PendingReset {
  /** Why continuity was lost. */
  readonly reason: string
  /** The reset event's id: the position from which a reconnect resumes exactly. */
  readonly id: string
  /** How many queued live events precede it. */
  readonly at: number
}

/** A new member for `connection`: not live yet (live publications queue up until its replay ends). */
export function createMember(
  connection: Connection,
  topics: readonly string[],
  clientId: string | undefined,
): Member {
  const keys = [...topics]
  if (clientId !== undefined) keys.push(CLIENT_PREFIX + clientId)
  keys.push(ALL_KEY)
  return {
    connection,
    keys,
    openTopics: new Set(topics),
    cursor: null,
    queue: [],
    mark: 0,
    announced: false,
    resetPending: null,
  }
}

/** The hub's counters; the hub's parts add to the same object (and connections to `bytesOut`). */
export interface HubCounters {
  /** Bytes written to connections (added by each {@link Connection}). */
  bytesOut: number
  /** Publishes accepted through this hub. */
  eventsPublished: number
  /** Publications received from the broker. */
  eventsIn: number
  /** Event frames written to connections. */
  eventsOut: number
  /** Connections closed to make room. */
  evictions: number
  /** Connections refused at a limit. */
  rejections: number
}

/**
 * True while `connection` is open. A function, so that TypeScript does not narrow `state` across
 * calls that may close the connection (a write, an await).
 */
export function isOpen(connection: Connection): boolean {
  return connection.state === 'open'
}
