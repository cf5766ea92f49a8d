/** Messages between the bench's main thread and its load-generator workers. */

/** How a server takes subscriptions and publishes. */
export type Dialect = 'json' | 'nchan'

/** What each worker thread gets as `workerData`. */
export interface WorkerConfig {
  readonly index: number
  readonly host: string
  readonly port: number
  /** Source addresses to spread connections over (127.0.0.2 ...), beyond one ephemeral range. */
  readonly sourceAddresses: readonly string[]
  /** Sent as `Authorization: Bearer <key>` with each publish (a hub with a publish key). */
  readonly publishKey: string | null
}

/** What a publisher sends: targets are cycled round-robin. */
export interface PublishPlan {
  readonly dialect: Dialect
  /** Each target is a topic list (`kind: 'topic'`) or one client id. */
  readonly kind: 'topic' | 'clientId'
  readonly targets: readonly (readonly string[])[]
  /** `max`: closed loop, as fast as accepted; `rate`: a fixed rate. */
  readonly mode: 'max' | 'rate'
  readonly ratePerSecond: number
  /** Sockets (publishes in flight). */
  readonly concurrency: number
  readonly seconds: number
  readonly maxPublishes: number
  /** Extra bytes of payload (slow-consumer scenario). */
  readonly paddingBytes: number
  /** Events per request through ssehub's `POST /publish/batch` (absent: one per `POST /publish`). */
  readonly batch?: number
}

/** A request from the main thread to a worker. */
export type Command =
  | { readonly type: 'open'; readonly paths: readonly string[]; readonly timeoutMs: number }
  | { readonly type: 'open-slow'; readonly path: string; readonly timeoutMs: number }
  | { readonly type: 'slow-status'; readonly timeoutMs: number }
  | { readonly type: 'reset' }
  | { readonly type: 'stats' }
  | { readonly type: 'close-all' }
  | { readonly type: 'publish'; readonly plan: PublishPlan }

/** The answer to `open` and `open-slow`. */
export interface OpenResult {
  readonly opened: number
  readonly failed: number
  readonly errors: readonly string[]
}

/** The answer to `stats`: what a worker's streams received since the last `reset`. */
export interface Stats {
  readonly received: number
  readonly open: number
  readonly closedByServer: number
  /** Latency histogram counts (see histogram.ts). */
  readonly histogram: readonly number[]
}

/** The answer to `publish`. */
export interface PublishResult {
  readonly accepted: number
  readonly failed: number
  readonly elapsedS: number
  /** Publishes sent later than scheduled because every socket was busy (rate mode). */
  readonly late: number
  readonly rttHistogram: readonly number[]
  /** The first refusal, e.g. `401 Unauthorized` (null when every publish was accepted). */
  readonly firstFailure: string | null
}

/** The answer to `slow-status`. */
export interface SlowStatus {
  /** The server closed the stalled connection (a slow-consumer policy). */
  readonly closedByServer: boolean
  /** Bytes that reached the stalled connection once it read again. */
  readonly bytesAfterResume: number
}

/** Any answer of a worker. */
export type Reply = OpenResult | Stats | PublishResult | SlowStatus | null
