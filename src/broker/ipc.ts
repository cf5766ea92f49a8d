/**
 * The broker of a worker process (`ssehub serve --workers N`): the primary process owns the
 * hub's real broker (memory or durable) and numbers every publication; each worker reaches it
 * through this {@link Broker} over an {@link IpcChannel}. So every worker is the same hub: one
 * log, one id space, one history, and a client resumes exactly on whichever worker it lands.
 *
 * Live publications reach a worker only for routing keys one of its connections follows (it
 * tells the primary when a key gains its first connection or loses its last), once per worker,
 * never once per connection. Each carries `n`, its place in the primary's delivery order; a
 * resume answers the `n` of its snapshot, and the {@link IpcCursor} drops what is at or before
 * it: the no-gap, no-duplicate overlap of the hub's subscribe path, across two processes.
 */
import type {
  Broker,
  BrokerCommand,
  BrokerHealth,
  BrokerSink,
  Cursor,
  NodeReport,
  Presence,
  PresenceConnection,
  PresenceCount,
  PresenceNode,
  Publication,
  PublishRequest,
  Resume,
  StartFrom,
  TopicState,
} from './broker.js'
import { ErrorCodes, SseError, type ErrorCode } from '../errors.js'
import type { IpcChannel } from './ipc-channel.js'
import type {
  PrimaryMessage,
  Request,
  ResumeAnswer,
  WireError,
  WorkerMessage,
} from './ipc-protocol.js'

/** Routing keys as broker.ts defines them: `@c/<clientId>` and the broadcast key. */
const CLIENT_PREFIX = '@c/'
const ALL_KEY = '@all'

/** How long a worker waits for the primary's answer before the request fails (ms). */
export const IPC_REQUEST_TIMEOUT_MS = 10_000

/** A publication as a worker receives it: with its place in the primary's delivery order. */
type NumberedPublication = Publication & { readonly n?: number }

/** A worker connection's position: the primary's delivery count, and the SSE id it names. */
class IpcCursor implements Cursor {
  constructor(
    private n: number,
    public id: string,
  ) {}

  advance(publication: Publication): string | null {
    const n = (publication as NumberedPublication).n
    if (n === undefined || n <= this.n) return null
    this.n = n
    this.id = publication.id
    return publication.id
  }
}

/** A {@link Request} without its envelope (`t`, `i`), as {@link IpcBroker.request} takes it. */
type RequestBody = Request extends infer R
  ? R extends unknown
    ? Omit<R, 'i' | 't'>
    : never
  : never

/** A request in flight: how to settle it. */
interface Pending {
  resolve(value: unknown): void
  reject(error: Error): void
  timer: NodeJS.Timeout
}

/**
 * How a worker finds and ends connections when the hub-wide limits evict (`--overflow evict`):
 * its process's hub, wired by the CLI once the hub exists.
 */
export interface IpcEvictor {
  /** The least recently written connection (of `clientId`, if given) but `exclude`, or null. */
  candidate(
    clientId: string | undefined,
    exclude: string | undefined,
  ): { readonly id: string; readonly lastWriteAt: number } | null
  /** Ends connection `id` (reason `evicted`). */
  evict(id: string): void
}

/** Options of {@link IpcBroker}. */
export interface IpcBrokerOptions {
  /** The link to the primary (the worker's end). */
  readonly channel: (
    onMessage: (message: unknown) => void,
    onClose: (error: Error | null) => void,
  ) => IpcChannel
  /** This worker's node id (in `/stats`, `/clients`, `/topics`). */
  readonly node: string
  /**
   * Receive every publication, not only those of keys a local connection follows: for a broker
   * used without a hub's presence (the broker contract tests). A worker never needs it.
   * @default false
   */
  readonly everything?: boolean
}

/**
 * A worker's broker: every call goes to the primary's broker; publications and commands come
 * back from it. Its {@link IpcBroker.presence} is the whole hub's, kept by the primary.
 */
export class IpcBroker implements Broker {
  /** The presence of every worker of the hub. */
  readonly presence: Presence
  private readonly channel: IpcChannel
  private sink: BrokerSink | null = null
  private readonly pending = new Map<number, Pending>()
  private nextRequest = 0
  private brokerHealth: BrokerHealth = { ok: false, broker: 'ipc' }
  /** Connections per routing key on this worker: the keys the primary must send here. */
  private readonly interest = new Map<string, number>()
  private statsSource: PresenceNode | null = null
  private evictor: IpcEvictor | null = null
  /**
   * The connection that joined in this tick: the hub registers a connection and asks for its
   * resume in the same tick, so the resume names it and the primary checks the hub-wide limits
   * for it.
   */
  private joining: string | null = null
  private closed = false

  constructor(options: IpcBrokerOptions) {
    this.channel = options.channel(
      (message) => this.receive(message as PrimaryMessage),
      (error) => this.lost(error),
    )
    this.send({ t: 'hi', node: options.node })
    if (options.everything === true) this.send({ t: 'all' })
    this.presence = createPresence(this, options.node)
  }

  start(sink: BrokerSink): Promise<void> {
    this.sink = sink
    return Promise.resolve()
  }

  publish(request: PublishRequest): Promise<Publication> {
    return this.request({ op: 'publish', r: request }) as Promise<Publication>
  }

  async resume(
    keys: readonly string[],
    lastEventId: string | undefined,
    from?: StartFrom,
  ): Promise<Resume> {
    // The connection joined (presence) in the same tick, before this: its keys' interest went
    // out first on the same ordered channel, so every publication the primary numbers after its
    // snapshot comes here.
    const answer = (await this.request({
      op: 'resume',
      keys,
      ...(this.joining === null ? {} : { c: this.joining }),
      ...(lastEventId === undefined ? {} : { last: lastEventId }),
      ...(from === undefined ? {} : { from }),
    })) as ResumeAnswer
    return {
      cursor: new IpcCursor(answer.n, answer.id),
      replay: answer.replay.map((item) => ({ publication: item.p, id: item.id })),
      reset: answer.reset,
      ended: new Set(answer.ended),
    }
  }

  topicState(key: string): Promise<TopicState> {
    return this.request({ op: 'topicState', key }) as Promise<TopicState>
  }

  async command(command: BrokerCommand): Promise<void> {
    await this.request({ op: 'command', c: command })
  }

  health(): BrokerHealth {
    if (this.channel.isClosed)
      return { ok: false, broker: this.brokerHealth.broker, details: { primary: 'gone' } }
    return this.brokerHealth
  }

  close(): Promise<void> {
    this.closed = true
    this.sink = null
    this.channel.close()
    return Promise.resolve()
  }

  /** @internal Sends a notice to the primary. */
  send(message: WorkerMessage): void {
    this.channel.send(message)
  }

  /** @internal A request to the primary; rejects after {@link IPC_REQUEST_TIMEOUT_MS}. */
  request(body: RequestBody): Promise<unknown> {
    if (this.channel.isClosed) {
      return Promise.reject(
        new SseError(ErrorCodes.BROKER_UNAVAILABLE, 'The primary process is gone; retry later.'),
      )
    }
    const i = ++this.nextRequest
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(i)
        reject(
          new SseError(
            ErrorCodes.BROKER_UNAVAILABLE,
            `The primary process did not answer within ${IPC_REQUEST_TIMEOUT_MS} ms; retry later.`,
          ),
        )
      }, IPC_REQUEST_TIMEOUT_MS)
      timer.unref()
      this.pending.set(i, { resolve, reject, timer })
      this.channel.send({ t: 'q', i, ...body })
    })
  }

  /** @internal A connection joined: its keys that had no connection here are subscribed. */
  joined(connection: PresenceConnection): void {
    const added: string[] = []
    for (const key of keysOf(connection)) {
      const count = this.interest.get(key) ?? 0
      this.interest.set(key, count + 1)
      if (count === 0) added.push(key)
    }
    if (added.length > 0) this.send({ t: 'sub', k: added })
    this.send({ t: 'join', c: presenceOf(connection) })
    this.joining = connection.id
    queueMicrotask(() => (this.joining = null))
  }

  /** @internal A connection left: keys with no connection left here are unsubscribed. */
  left(connection: PresenceConnection): void {
    const removed: string[] = []
    for (const key of keysOf(connection)) {
      const count = (this.interest.get(key) ?? 1) - 1
      if (count <= 0) {
        this.interest.delete(key)
        removed.push(key)
      } else this.interest.set(key, count)
    }
    this.send({ t: 'left', id: connection.id })
    if (removed.length > 0) this.send({ t: 'unsub', k: removed })
  }

  /**
   * Where the hub-wide limits find and end this worker's connections under `--overflow evict`
   * (without one, this worker offers none).
   */
  evictWith(evictor: IpcEvictor): void {
    this.evictor = evictor
  }

  /** @internal Where the worker's stats come from (the hub, through the presence). */
  statsFrom(node: PresenceNode | null): void {
    this.statsSource = node
  }

  private receive(message: PrimaryMessage): void {
    switch (message.t) {
      case 'p': {
        const { n, p } = message
        // The number rides on the publication: the cursor reads it.
        this.sink?.publication({ ...p, n } as NumberedPublication)
        return
      }
      case 'r': {
        const pending = this.pending.get(message.i)
        if (pending === undefined) return
        this.pending.delete(message.i)
        clearTimeout(pending.timer)
        if ('e' in message) pending.reject(toError(message.e))
        else pending.resolve(message.v)
        return
      }
      case 'c':
        this.sink?.command(message.c)
        return
      case 'reset':
        this.sink?.reset(message.reason, message.id)
        return
      case 'err':
        this.sink?.error(new Error(message.message))
        return
      case 'down':
        this.sink?.unavailable(new SseError(ErrorCodes.BROKER_UNAVAILABLE, message.message))
        return
      case 'up':
        this.sink?.recovered()
        return
      case 'h':
        this.brokerHealth = message.h
        return
      case 'sq':
        this.send({ t: 'stats', i: message.i, s: this.statsSource?.stats() ?? {} })
        return
      case 'lq':
        this.send({
          t: 'lru',
          i: message.i,
          c: this.evictor?.candidate(message.clientId, message.exclude) ?? null,
        })
        return
      case 'evict':
        this.evictor?.evict(message.id)
        return
    }
  }

  private lost(error: Error | null): void {
    for (const pending of this.pending.values()) {
      clearTimeout(pending.timer)
      pending.reject(
        new SseError(ErrorCodes.BROKER_UNAVAILABLE, 'The primary process is gone; retry later.'),
      )
    }
    this.pending.clear()
    if (!this.closed)
      this.sink?.unavailable(
        new SseError(ErrorCodes.BROKER_UNAVAILABLE, 'The primary process is gone.', {
          cause: error ?? undefined,
        }),
      )
  }
}

/** The routing keys a connection follows (broker.ts: topics, `@c/<clientId>`, `@all`). */
function keysOf(connection: PresenceConnection): string[] {
  const keys = [...connection.topics]
  if (connection.clientId !== undefined) keys.push(CLIENT_PREFIX + connection.clientId)
  keys.push(ALL_KEY)
  return keys
}

/** The fields of a connection the presence keeps (not the Connection object itself). */
function presenceOf(connection: PresenceConnection): PresenceConnection {
  return {
    id: connection.id,
    clientId: connection.clientId,
    topics: connection.topics,
    connectedAt: connection.connectedAt,
    remoteAddress: connection.remoteAddress,
  }
}

function toError(error: WireError): Error {
  const code = error.code as ErrorCode | undefined
  if (code !== undefined && Object.values(ErrorCodes).includes(code))
    return new SseError(code, error.message)
  return new Error(error.message)
}

/** The hub-wide presence, kept by the primary: the worker reports, the primary answers. */
function createPresence(broker: IpcBroker, node: string): Presence {
  return {
    node,
    // A dead worker's entries are dropped the moment the primary sees it exit.
    ttlMs: 0,
    start: (source) => broker.statsFrom(source),
    joined: (connection) => broker.joined(connection),
    left: (connection) => broker.left(connection),
    topic: (topic) => broker.request({ op: 'topic', topic }) as Promise<PresenceCount>,
    client: (clientId) => broker.request({ op: 'client', clientId }) as Promise<PresenceCount>,
    connections: (limit) =>
      broker.request({ op: 'connections', limit }) as Promise<
        (PresenceConnection & { readonly node: string })[]
      >,
    nodes: () => broker.request({ op: 'nodes' }) as Promise<NodeReport[]>,
    close: () => {
      broker.statsFrom(null)
      return Promise.resolve()
    },
  }
}
