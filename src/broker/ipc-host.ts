/**
 * The primary's side of `ssehub serve --workers N`: it owns the hub's one broker (memory or
 * durable) and serves every worker's {@link IpcBroker} over an {@link IpcChannel} each. It is the
 * hub's sequencer (one log, one id space), its fan-out between processes, its presence (who is
 * connected to which worker) and the keeper of the hub-wide connection limits.
 *
 * Fan-out cost: a publication is serialized once, and its line is written to each worker that
 * has a connection following one of its keys; the channel batches every line of a turn into one
 * write. Never once per connection.
 */
import type { Duplex } from 'node:stream'
import type {
  Broker,
  BrokerHealth,
  BrokerSink,
  NodeReport,
  PresenceConnection,
  PresenceCount,
  Publication,
} from './broker.js'
import { ErrorCodes, SseError, isSseError } from '../errors.js'
import { IpcChannel, type IpcChannelOptions } from './ipc-channel.js'
import type { PrimaryMessage, Request, ResumeAnswer, WorkerMessage } from './ipc-protocol.js'

/** The hub-wide connection limits the host enforces (`null`: none). */
export interface IpcHostLimits {
  readonly maxConnections: number | null
  readonly maxConnectionsPerClient: number | null
  readonly maxConnectionsPerIp: number | null
  /**
   * At the total or per-client limit: `reject` the new connection, or `evict` the least recently
   * written one of the hub (of that client) to make room. The per-IP limit always rejects.
   * @default 'reject'
   */
  readonly overflow?: 'reject' | 'evict'
}

/** Options of {@link IpcHost}. */
export interface IpcHostOptions extends IpcChannelOptions {
  /** The hub's broker (memory or durable: one that numbers publications in this process). */
  readonly broker: Broker
  /**
   * The connection limits over every worker together. A connection that would pass one is
   * refused (`ERR_SSE_LIMIT_REACHED`, or `ERR_SSE_RATE_LIMITED` for the per-IP limit).
   */
  readonly limits?: IpcHostLimits
  /** How long the host waits for a worker's stats for `/stats` (ms). @default 1000 */
  readonly statsTimeoutMs?: number
  /** An operational error (a worker's link broke, the broker reported one). */
  readonly onError?: (error: Error) => void
}

/** How often the host checks its broker's health for changes to send the workers (ms). */
const HEALTH_POLL_MS = 1000

/** One worker as the host sees it. */
export class WorkerLink {
  /** The worker's node id (from its first message). */
  node = ''
  /** Routing keys at least one of its connections follows. */
  readonly interest = new Set<string>()
  /** Its connections, by id. */
  readonly connections = new Map<string, PresenceConnection>()
  /** Its connections per topic and per client id (the online counts). */
  readonly topics = new Map<string, number>()
  readonly clients = new Map<string, number>()
  /** Publications sent to it. */
  publicationsOut = 0
  /** It asked for every publication (`all`), whatever its keys. */
  everything = false

  constructor(
    /** The channel to it. */
    readonly channel: IpcChannel,
  ) {}

  /** True when one of its connections follows one of `keys`. */
  wants(keys: readonly string[]): boolean {
    if (this.everything) return true
    for (const key of keys) if (this.interest.has(key)) return true
    return false
  }
}

/** The primary's end of every worker's broker. */
export class IpcHost {
  /** The links to the workers now attached. */
  readonly links = new Set<WorkerLink>()
  /** Publications the broker delivered (the `n` of the last one). */
  private delivered = 0
  private readonly broker: Broker
  private readonly limits: IpcHostLimits
  private readonly statsTimeoutMs: number
  private readonly channelOptions: IpcChannelOptions
  private readonly perClient = new Map<string, number>()
  private readonly perIp = new Map<string, number>()
  private total = 0
  private readonly statsWaits = new Map<number, (stats: object) => void>()
  private readonly lruWaits = new Map<
    number,
    (candidate: { readonly id: string; readonly lastWriteAt: number } | null) => void
  >()
  private nextStats = 0
  private health = ''
  private healthTimer: NodeJS.Timeout | null = null

  constructor(private readonly options: IpcHostOptions) {
    this.broker = options.broker
    this.limits = options.limits ?? {
      maxConnections: null,
      maxConnectionsPerClient: null,
      maxConnectionsPerIp: null,
    }
    this.statsTimeoutMs = options.statsTimeoutMs ?? 1000
    this.channelOptions = {
      ...(options.maxBufferedBytes === undefined
        ? {}
        : { maxBufferedBytes: options.maxBufferedBytes }),
      ...(options.maxLineBytes === undefined ? {} : { maxLineBytes: options.maxLineBytes }),
    }
  }

  /** Starts the broker; the workers may attach before or after. */
  async start(): Promise<void> {
    const sink: BrokerSink = {
      publication: (publication) => this.fanOut(publication),
      command: (command) => this.broadcast({ t: 'c', c: command }),
      reset: (reason, id) => this.broadcast({ t: 'reset', reason, id }),
      error: (error) => {
        this.report(error)
        this.broadcast({ t: 'err', message: error.message })
      },
      unavailable: (error) => this.broadcast({ t: 'down', message: error.message }),
      recovered: () => this.broadcast({ t: 'up' }),
    }
    await this.broker.start(sink)
    this.healthTimer = setInterval(() => this.pollHealth(), HEALTH_POLL_MS)
    this.healthTimer.unref()
    this.pollHealth()
  }

  /** Attaches a worker's end of its link; the returned link is detached when it closes. */
  attach(socket: Duplex, onClose?: (link: WorkerLink, error: Error | null) => void): WorkerLink {
    let link: WorkerLink | null = null
    const channel = new IpcChannel(
      socket,
      (message) => this.receive(link!, message as WorkerMessage),
      (error) => {
        this.detach(link!)
        onClose?.(link!, error)
      },
      this.channelOptions,
    )
    link = new WorkerLink(channel)
    this.links.add(link)
    link.channel.send({ t: 'h', h: this.broker.health() } satisfies PrimaryMessage)
    return link
  }

  /** The broker's name (`memory`, `durable`), for the start line. */
  brokerName(): string {
    return this.broker.health().broker
  }

  /** Totals for the primary's logs: connections, publications delivered, bytes sent. */
  stats(): { connections: number; delivered: number; workers: number } {
    return { connections: this.total, delivered: this.delivered, workers: this.links.size }
  }

  /** Closes every link and the broker. */
  async close(): Promise<void> {
    if (this.healthTimer !== null) clearInterval(this.healthTimer)
    for (const link of [...this.links]) link.channel.close()
    await this.broker.close()
  }

  private fanOut(publication: Publication): void {
    const n = ++this.delivered
    let line: string | null = null
    for (const link of this.links) {
      if (!link.wants(publication.keys)) continue
      // Serialized once, for the first worker that needs it; the same text to the others.
      line ??= JSON.stringify({ t: 'p', n, p: wirePublication(publication) })
      link.channel.sendLine(line)
      link.publicationsOut++
    }
  }

  private broadcast(message: PrimaryMessage): void {
    const line = JSON.stringify(message)
    for (const link of this.links) link.channel.sendLine(line)
  }

  private detach(link: WorkerLink): void {
    if (!this.links.delete(link)) return
    // Its connections are gone with it: they leave every count at once.
    for (const connection of link.connections.values()) this.leave(link, connection)
    link.connections.clear()
  }

  private receive(link: WorkerLink, message: WorkerMessage): void {
    switch (message.t) {
      case 'hi':
        link.node = message.node
        return
      case 'sub':
        for (const key of message.k) link.interest.add(key)
        return
      case 'all':
        link.everything = true
        return
      case 'unsub':
        for (const key of message.k) link.interest.delete(key)
        return
      case 'join':
        link.connections.set(message.c.id, message.c)
        this.enter(link, message.c)
        return
      case 'left': {
        const connection = link.connections.get(message.id)
        if (connection === undefined) return
        link.connections.delete(message.id)
        this.leave(link, connection)
        return
      }
      case 'stats': {
        const wait = this.statsWaits.get(message.i)
        if (wait !== undefined) wait(message.s)
        return
      }
      case 'lru': {
        const wait = this.lruWaits.get(message.i)
        if (wait !== undefined) wait(message.c)
        return
      }
      case 'q':
        this.answer(link, message)
        return
    }
  }

  private answer(link: WorkerLink, request: Request): void {
    const reply = (value: unknown): void => link.channel.send({ t: 'r', i: request.i, v: value })
    const fail = (error: unknown): void => {
      const wire = isSseError(error)
        ? { code: error.code, message: error.message }
        : { message: error instanceof Error ? error.message : String(error) }
      link.channel.send({ t: 'r', i: request.i, e: wire })
    }
    let result: Promise<unknown>
    try {
      result = this.run(link, request)
    } catch (error) {
      fail(error)
      return
    }
    result.then(reply, fail)
  }

  private run(link: WorkerLink, request: Request): Promise<unknown> {
    switch (request.op) {
      case 'publish':
        return this.broker.publish(request.r).then(wirePublication)
      case 'resume': {
        if (request.c !== undefined) {
          const connection = link.connections.get(request.c)
          if (connection !== undefined) this.checkLimits(link, connection)
        }
        // The snapshot: the delivery count now, and the broker's position in the same tick.
        const n = this.delivered
        return this.broker
          .resume(request.keys, request.last, request.from)
          .then((resume): ResumeAnswer => ({
            n,
            id: resume.cursor.id,
            replay: resume.replay.map((item) => ({
              p: wirePublication(item.publication),
              id: item.id,
            })),
            reset: resume.reset,
            ended: [...resume.ended],
          }))
      }
      case 'topicState':
        return this.broker.topicState === undefined
          ? Promise.resolve({ lastEventId: null, ended: false })
          : this.broker.topicState(request.key)
      case 'command':
        return this.broker.command(request.c).then(() => null)
      case 'topic':
        return Promise.resolve(this.count((other) => other.topics.get(request.topic) ?? 0))
      case 'client':
        return Promise.resolve(this.count((other) => other.clients.get(request.clientId) ?? 0))
      case 'connections': {
        const out: (PresenceConnection & { node: string })[] = []
        for (const other of this.links) {
          if (other === link) continue
          for (const connection of other.connections.values()) {
            if (out.length >= request.limit) return Promise.resolve(out)
            out.push({ ...connection, node: other.node })
          }
        }
        return Promise.resolve(out)
      }
      case 'nodes':
        return this.nodes()
    }
  }

  /** Every worker's stats, asked now (a worker that does not answer in time is left out). */
  private async nodes(): Promise<NodeReport[]> {
    const asks = [...this.links].map(
      (link) =>
        new Promise<NodeReport | null>((resolve) => {
          const i = ++this.nextStats
          const timer = setTimeout(() => {
            this.statsWaits.delete(i)
            resolve(null)
          }, this.statsTimeoutMs)
          this.statsWaits.set(i, (stats) => {
            clearTimeout(timer)
            this.statsWaits.delete(i)
            resolve({ node: link.node, reportedAt: Date.now(), stats })
          })
          link.channel.send({ t: 'sq', i } satisfies PrimaryMessage)
        }),
    )
    return (await Promise.all(asks)).filter((report) => report !== null)
  }

  /** A count over the workers: the total and each worker's share (workers with none included). */
  private count(of: (link: WorkerLink) => number): PresenceCount {
    const nodes: Record<string, number> = {}
    let total = 0
    for (const link of this.links) {
      const count = of(link)
      nodes[link.node] = count
      total += count
    }
    return { total, nodes }
  }

  private enter(link: WorkerLink, connection: PresenceConnection): void {
    this.total++
    for (const topic of connection.topics) bump(link.topics, topic, 1)
    if (connection.clientId !== undefined) {
      bump(this.perClient, connection.clientId, 1)
      bump(link.clients, connection.clientId, 1)
    }
    if (connection.remoteAddress !== undefined) bump(this.perIp, connection.remoteAddress, 1)
  }

  private leave(link: WorkerLink, connection: PresenceConnection): void {
    this.total--
    for (const topic of connection.topics) bump(link.topics, topic, -1)
    if (connection.clientId !== undefined) {
      bump(this.perClient, connection.clientId, -1)
      bump(link.clients, connection.clientId, -1)
    }
    if (connection.remoteAddress !== undefined) bump(this.perIp, connection.remoteAddress, -1)
  }

  /**
   * The hub-wide limits, for a connection already counted (it joined just before its resume):
   * refused when it is one too many. Its worker refuses it, and its leave gives the room back.
   */
  private checkLimits(link: WorkerLink, connection: PresenceConnection): void {
    const { maxConnections, maxConnectionsPerClient, maxConnectionsPerIp } = this.limits
    const evict = this.limits.overflow === 'evict'
    const ip = connection.remoteAddress
    if (ip !== undefined && maxConnectionsPerIp !== null) {
      if ((this.perIp.get(ip) ?? 0) > maxConnectionsPerIp)
        throw new SseError(
          ErrorCodes.RATE_LIMITED,
          `Too many connections from ${ip} (maxConnectionsPerIp ${maxConnectionsPerIp}); close some or retry later.`,
        )
    }
    const clientId = connection.clientId
    if (clientId !== undefined && maxConnectionsPerClient !== null) {
      const own = this.perClient.get(clientId) ?? 0
      if (own > maxConnectionsPerClient && evict) this.evictLeastRecent(link, connection, clientId)
      else if (own > maxConnectionsPerClient)
        throw new SseError(
          ErrorCodes.LIMIT_REACHED,
          `Client ${JSON.stringify(clientId)} already has ${own - 1} connections (maxConnectionsPerClient); close one or retry later.`,
        )
    }
    if (maxConnections !== null && this.total > maxConnections && evict)
      this.evictLeastRecent(link, connection, undefined)
    else if (maxConnections !== null && this.total > maxConnections)
      throw new SseError(
        ErrorCodes.LIMIT_REACHED,
        `The hub holds its maximum of ${maxConnections} connections (maxConnections); retry later.`,
      )
  }

  /**
   * Makes room for `joining` (`--overflow evict`): asks every worker for its least recently
   * written connection (of `clientId`, if given) and ends the least recent of them. O(workers)
   * messages plus each worker's scan of its connections: it runs only at a limit, never on the
   * publish path. The new connection is served meanwhile; the count drops when the evicted one
   * leaves.
   */
  private evictLeastRecent(
    joiningLink: WorkerLink,
    joining: PresenceConnection,
    clientId: string | undefined,
  ): void {
    const asks = [...this.links]
      .filter((link) => clientId === undefined || (link.clients.get(clientId) ?? 0) > 0)
      .map(
        (link) =>
          new Promise<{ link: WorkerLink; id: string; lastWriteAt: number } | null>((resolve) => {
            const i = ++this.nextStats
            const timer = setTimeout(() => {
              this.lruWaits.delete(i)
              resolve(null)
            }, this.statsTimeoutMs)
            this.lruWaits.set(i, (candidate) => {
              clearTimeout(timer)
              this.lruWaits.delete(i)
              resolve(candidate === null ? null : { link, ...candidate })
            })
            link.channel.send({
              t: 'lq',
              i,
              ...(clientId === undefined ? {} : { clientId }),
              ...(link === joiningLink ? { exclude: joining.id } : {}),
            } satisfies PrimaryMessage)
          }),
      )
    void Promise.all(asks).then((candidates) => {
      let victim: { link: WorkerLink; id: string; lastWriteAt: number } | null = null
      for (const candidate of candidates)
        if (candidate !== null && (victim === null || candidate.lastWriteAt < victim.lastWriteAt))
          victim = candidate
      if (victim !== null && this.links.has(victim.link))
        victim.link.channel.send({ t: 'evict', id: victim.id } satisfies PrimaryMessage)
    })
  }

  private pollHealth(): void {
    const health: BrokerHealth = this.broker.health()
    const text = JSON.stringify(health)
    if (text === this.health) return
    this.health = text
    for (const link of this.links) link.channel.sendLine(`{"t":"h","h":${text}}`)
  }

  private report(error: Error): void {
    this.options.onError?.(error)
  }
}

/** The fields a worker needs (a broker's publication may carry its own, e.g. a durable size). */
function wirePublication(publication: Publication): Publication {
  return {
    id: publication.id,
    keys: publication.keys,
    event: publication.event,
    data: publication.data,
    retry: publication.retry,
    close: publication.close,
    time: publication.time,
    ...(publication.duplicate === true ? { duplicate: true } : {}),
  }
}

function bump(counts: Map<string, number>, key: string, by: number): void {
  const count = (counts.get(key) ?? 0) + by
  if (count <= 0) counts.delete(key)
  else counts.set(key, count)
}
