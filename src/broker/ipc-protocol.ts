/**
 * The messages between a worker's {@link IpcBroker} (ipc.ts) and the primary's {@link IpcHost}
 * (ipc-host.ts), one JSON object per line of their {@link IpcChannel}. Short field names: a
 * publication's envelope is paid once per worker per event.
 */
import type {
  BrokerCommand,
  BrokerHealth,
  Publication,
  PresenceConnection,
  PublishRequest,
  ResetReason,
  StartFrom,
} from './broker.js'

/** A request a worker makes of the primary; answered by one {@link Answer} with the same `i`. */
export type Request =
  | { readonly t: 'q'; readonly i: number; readonly op: 'publish'; readonly r: PublishRequest }
  | {
      readonly t: 'q'
      readonly i: number
      readonly op: 'resume'
      readonly keys: readonly string[]
      /** The connection that joined just before (its hub-wide limits are checked). */
      readonly c?: string
      readonly last?: string
      readonly from?: StartFrom
    }
  | { readonly t: 'q'; readonly i: number; readonly op: 'topicState'; readonly key: string }
  | { readonly t: 'q'; readonly i: number; readonly op: 'command'; readonly c: BrokerCommand }
  | { readonly t: 'q'; readonly i: number; readonly op: 'topic'; readonly topic: string }
  | { readonly t: 'q'; readonly i: number; readonly op: 'client'; readonly clientId: string }
  | { readonly t: 'q'; readonly i: number; readonly op: 'connections'; readonly limit: number }
  | { readonly t: 'q'; readonly i: number; readonly op: 'nodes' }

/** What a worker tells the primary without waiting for an answer. */
export type WorkerNotice =
  /** First message: the worker's node id. */
  | { readonly t: 'hi'; readonly node: string }
  /** The worker now has a connection following these routing keys (it had none). */
  | { readonly t: 'sub'; readonly k: readonly string[] }
  /** Send every publication, whatever its keys (a broker used without presence: tests). */
  | { readonly t: 'all' }
  /** The worker has no connection following these routing keys any more. */
  | { readonly t: 'unsub'; readonly k: readonly string[] }
  /** A connection joined the worker (presence, and the global connection limits). */
  | { readonly t: 'join'; readonly c: PresenceConnection }
  /** A connection left the worker. */
  | { readonly t: 'left'; readonly id: string }
  /** Its least recently written connection (of `clientId`, if given), answering `lq`. */
  | {
      readonly t: 'lru'
      readonly i: number
      readonly c: { readonly id: string; readonly lastWriteAt: number } | null
    }
  /** The worker's stats, answering the primary's `sq` with the same `i`. */
  | { readonly t: 'stats'; readonly i: number; readonly s: object }

/** Everything a worker sends. */
export type WorkerMessage = Request | WorkerNotice

/** A refusal carried across: an `SseError`'s code (if it was one) and message. */
export interface WireError {
  readonly code?: string
  readonly message: string
}

/** The answer to a {@link Request}. */
export type Answer =
  | { readonly t: 'r'; readonly i: number; readonly v: unknown }
  | { readonly t: 'r'; readonly i: number; readonly e: WireError }

/** A publication as the primary sends it: `n` is its place in the primary's delivery order. */
export type PublicationMessage = { readonly t: 'p'; readonly n: number; readonly p: Publication }

/** The answer to a `resume` request. */
export interface ResumeAnswer {
  /** The primary's delivery count when it snapshotted: live publications up to it are dropped. */
  readonly n: number
  /** The cursor's SSE id at the snapshot. */
  readonly id: string
  readonly replay: readonly { readonly p: Publication; readonly id: string }[]
  readonly reset: { readonly reason: ResetReason; readonly keys: readonly string[] } | null
  readonly ended: readonly string[]
}

/** What the primary sends a worker unasked. */
export type PrimaryNotice =
  | PublicationMessage
  /** A command for every worker. */
  | { readonly t: 'c'; readonly c: BrokerCommand }
  /** The broker lost continuity (see `BrokerSink.reset`). */
  | { readonly t: 'reset'; readonly reason: ResetReason; readonly id: string }
  /** The broker's operational error (`BrokerSink.error`). */
  | { readonly t: 'err'; readonly message: string }
  /** The broker's outage began / ended. */
  | { readonly t: 'down'; readonly message: string }
  | { readonly t: 'up' }
  /** The broker's health, sent when it changes (and on attach). */
  | { readonly t: 'h'; readonly h: BrokerHealth }
  /** Asks for the least recently written connection, not `exclude` (answered with `lru`). */
  | {
      readonly t: 'lq'
      readonly i: number
      readonly clientId?: string
      readonly exclude?: string
    }
  /** Ends a connection to make room under `--overflow evict` (reason `evicted`). */
  | { readonly t: 'evict'; readonly id: string }
  /** Asks the worker for its stats (answered with `stats` and the same `i`). */
  | { readonly t: 'sq'; readonly i: number }

/** Everything the primary sends. */
export type PrimaryMessage = Answer | PrimaryNotice
