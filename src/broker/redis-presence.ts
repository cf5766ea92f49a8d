/**
 * Cluster-wide presence in Redis: each node keeps a mirror of its own connections in memory and
 * writes what changed to keys that only it writes and that expire unless it renews them. Readers
 * (online counts, `/clients`, `DELETE /clients/{id}`, `/stats`) sum the live nodes' keys; a node
 * that dies stops renewing, and its entries vanish within `ttlMs`.
 *
 * Keys, under the broker's prefix (one hash tag, so one Cluster slot):
 * - `nodes` — sorted set: node id -> the time its entries expire (readers skip expired ones);
 * - `node:<id>` — its last report (stats), JSON, `PX ttlMs`;
 * - `node:<id>:topics` / `:clients` — hash: topic / client id -> its connections on the node;
 * - `node:<id>:conns` — hash: connection id -> JSON of the connection (for `/clients`).
 *
 * Writes are batched: a change marks its key dirty and one pipeline per `flushMs` writes every
 * dirty field, so a burst of 10,000 connects costs a few round trips, not 10,000. A heartbeat
 * every `ttlMs / 3` renews the keys; when it finds the node's report gone (the keys expired during
 * a stall, or Redis restarted empty) the next write rewrites the whole mirror in one transaction.
 */
import type { ChainableCommander } from 'ioredis'
import type {
  NodeReport,
  Presence,
  PresenceConnection,
  PresenceCount,
  PresenceNode,
} from './broker.js'
import type { RedisClient } from './redis-client.js'
import { withTimeout } from './redis-log.js'

/** What {@link RedisPresence} needs from its broker. */
export interface RedisPresenceOptions {
  /** The broker's client (not its blocking reader). */
  readonly client: RedisClient
  /** The broker's key prefix. */
  readonly prefix: string
  /** This node's id. */
  readonly node: string
  /** How long a dead node's entries outlive it, in ms; the heartbeat renews them every third. */
  readonly ttlMs: number
  /** Longest delay between a local change and its write to Redis, in ms. */
  readonly flushMs: number
  /** Reports a failed write, once per outage. */
  readonly reportError: (error: Error) => void
}

/** Fields per HSET / HDEL command in a rewrite: bounds one command's size. */
const CHUNK = 1_000
/** Longest wait for Redis on a presence read or write, in ms: an answer or a stop never hangs. */
const IO_TIMEOUT_MS = 2_000
/** Entries fetched per HSCAN call when listing another node's connections. */
const SCAN_COUNT = 1_000

/** The Redis broker's {@link Presence}. */
export class RedisPresence implements Presence {
  readonly node: string
  readonly ttlMs: number
  private readonly redis: RedisClient
  private readonly flushMs: number
  private readonly reportError: (error: Error) => void
  private readonly nodesKey: string
  private readonly prefix: string
  // The mirror: this node's connections, and its counts by topic and by client id.
  private readonly conns = new Map<string, PresenceConnection>()
  private readonly topics = new Map<string, number>()
  private readonly clients = new Map<string, number>()
  // What changed since the last write (bounded by the mirror's size).
  private readonly dirtyConns = new Set<string>()
  private readonly dirtyTopics = new Set<string>()
  private readonly dirtyClients = new Set<string>()
  /** The next write rewrites everything (first write, keys lost, a failed write). */
  private full = true
  private source: PresenceNode | null = null
  private flushTimer: NodeJS.Timeout | null = null
  private heartbeat: NodeJS.Timeout | null = null
  private writing: Promise<void> | null = null
  private again = false
  private failing = false
  private closed = false

  constructor(options: RedisPresenceOptions) {
    this.redis = options.client
    this.node = options.node
    this.ttlMs = options.ttlMs
    this.flushMs = options.flushMs
    this.reportError = options.reportError
    this.prefix = options.prefix
    this.nodesKey = `${options.prefix}nodes`
  }

  start(node: PresenceNode): void {
    if (this.closed || this.source !== null) return
    this.source = node
    this.heartbeat = setInterval(() => this.flush(true), Math.max(1, Math.floor(this.ttlMs / 3)))
    this.heartbeat.unref()
    this.flush(true)
  }

  joined(connection: PresenceConnection): void {
    this.conns.set(connection.id, connection)
    this.dirtyConns.add(connection.id)
    for (const topic of connection.topics) bump(this.topics, this.dirtyTopics, topic, 1)
    if (connection.clientId !== undefined)
      bump(this.clients, this.dirtyClients, connection.clientId, 1)
    this.schedule()
  }

  left(connection: PresenceConnection): void {
    if (this.conns.get(connection.id) !== connection) return
    this.conns.delete(connection.id)
    this.dirtyConns.add(connection.id)
    for (const topic of connection.topics) bump(this.topics, this.dirtyTopics, topic, -1)
    if (connection.clientId !== undefined)
      bump(this.clients, this.dirtyClients, connection.clientId, -1)
    this.schedule()
  }

  topic(topic: string): Promise<PresenceCount> {
    return this.count('topics', topic, this.topics.get(topic) ?? 0)
  }

  client(clientId: string): Promise<PresenceCount> {
    return this.count('clients', clientId, this.clients.get(clientId) ?? 0)
  }

  async connections(limit: number): Promise<(PresenceConnection & { readonly node: string })[]> {
    const out: (PresenceConnection & { node: string })[] = []
    for (const node of await this.liveNodes()) {
      if (node === this.node) continue
      let cursor = '0'
      do {
        if (out.length >= limit) return out
        const [next, flat] = await this.read(
          this.redis.hscan(this.nodeKey(node, 'conns'), cursor, 'COUNT', SCAN_COUNT),
        )
        cursor = next
        for (let i = 0; i + 1 < flat.length && out.length < limit; i += 2) {
          const connection = decodeConnection(flat[i]!, flat[i + 1]!)
          if (connection !== null) out.push({ ...connection, node })
        }
      } while (cursor !== '0')
    }
    return out
  }

  async nodes(): Promise<NodeReport[]> {
    const others = (await this.liveNodes()).filter((node) => node !== this.node)
    const reports: NodeReport[] = [
      { node: this.node, reportedAt: Date.now(), stats: this.source?.stats() ?? {} },
    ]
    if (others.length === 0) return reports
    const values = await this.read(
      this.redis.mget(...others.map((node) => this.nodeKey(node, null))),
    )
    others.forEach((node, index) => {
      const report = decodeReport(values[index])
      if (report !== null) reports.push({ node, ...report })
    })
    return reports
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    if (this.heartbeat !== null) clearInterval(this.heartbeat)
    if (this.flushTimer !== null) clearTimeout(this.flushTimer)
    this.heartbeat = this.flushTimer = null
    // A write under way ends within IO_TIMEOUT_MS (it is bounded); the removal goes after it.
    await this.writing
    if (this.redis.status !== 'ready') return
    // A clean stop leaves at once, not after the TTL.
    try {
      await this.read(
        this.redis
          .multi()
          .zrem(this.nodesKey, this.node)
          .del(...this.ownKeys())
          .exec(),
      )
    } catch (error) {
      // The keys expire by themselves within ttlMs: say why they linger, do not fail the close.
      this.reportError(
        new Error(
          `Could not remove this node's presence from Redis (${(error as Error).message}); it expires within ${this.ttlMs} ms.`,
        ),
      )
    }
  }

  /** Each live node's count in the hash `kind` for `field`; this node's from its mirror. */
  private async count(
    kind: 'topics' | 'clients',
    field: string,
    local: number,
  ): Promise<PresenceCount> {
    const others = (await this.liveNodes()).filter((node) => node !== this.node)
    const nodes: Record<string, number> = { [this.node]: local }
    let total = local
    if (others.length > 0) {
      const pipeline = this.redis.pipeline()
      for (const node of others) pipeline.hget(this.nodeKey(node, kind), field)
      const results = (await this.read(pipeline.exec())) ?? []
      others.forEach((node, index) => {
        const [error, value] = results[index] ?? [null, null]
        if (error !== null) throw error
        const count = Number(value ?? 0) || 0
        nodes[node] = count
        total += count
      })
    }
    return { total, nodes }
  }

  /** Node ids whose entries have not expired. */
  private liveNodes(): Promise<string[]> {
    return this.read(this.redis.zrangebyscore(this.nodesKey, Date.now(), '+inf'))
  }

  /** A read bounded in time, so that an answer never hangs on a stalled Redis. */
  private read<T>(promise: Promise<T>): Promise<T> {
    return withTimeout(promise, IO_TIMEOUT_MS, 'Redis did not answer the presence read in time.')
  }

  private nodeKey(node: string, kind: 'topics' | 'clients' | 'conns' | null): string {
    return `${this.prefix}node:${node}${kind === null ? '' : `:${kind}`}`
  }

  private ownKeys(): string[] {
    return [
      this.nodeKey(this.node, null),
      this.nodeKey(this.node, 'topics'),
      this.nodeKey(this.node, 'clients'),
      this.nodeKey(this.node, 'conns'),
    ]
  }

  private schedule(): void {
    if (this.flushTimer !== null || this.closed || this.source === null) return
    this.flushTimer = setTimeout(() => {
      this.flushTimer = null
      this.flush(false)
    }, this.flushMs)
    this.flushTimer.unref()
  }

  /** Writes what changed (and, with `heartbeat`, renews the keys); one write at a time. */
  private flush(heartbeat: boolean): void {
    if (this.closed || this.source === null) return
    if (this.writing !== null) {
      this.again = true
      return
    }
    this.writing = this.write(heartbeat || this.full)
      .catch((error: unknown) => {
        // Whatever was dirty is lost with the failed write: rewrite everything next time.
        this.full = true
        if (!this.failing && !this.closed) this.reportError(asError(error))
        this.failing = true
      })
      .finally(() => {
        this.writing = null
        if (this.again) {
          this.again = false
          this.schedule()
        }
      })
  }

  private async write(heartbeat: boolean): Promise<void> {
    // Redis away: the broker reports the outage; the heartbeat after it rewrites everything.
    if (this.redis.status !== 'ready') {
      this.full = true
      return
    }
    const full = this.full
    this.full = false
    const [nodeKey, topicsKey, clientsKey, connsKey] = this.ownKeys() as [
      string,
      string,
      string,
      string,
    ]
    const batch: ChainableCommander = full ? this.redis.multi() : this.redis.pipeline()
    const report = JSON.stringify({ reportedAt: Date.now(), stats: this.source?.stats() ?? {} })
    // `GET` tells whether the report was still there: if not, the keys expired or Redis lost them.
    if (heartbeat) batch.set(nodeKey, report, 'PX', this.ttlMs, 'GET')
    if (full) {
      batch.del(topicsKey, clientsKey, connsKey)
      writeAll(batch, topicsKey, this.topics, String)
      writeAll(batch, clientsKey, this.clients, String)
      writeAll(batch, connsKey, this.conns, encodeConnection)
      this.dirtyTopics.clear()
      this.dirtyClients.clear()
      this.dirtyConns.clear()
    } else {
      writeDirty(batch, topicsKey, this.dirtyTopics, (key) => this.topics.get(key), String)
      writeDirty(batch, clientsKey, this.dirtyClients, (key) => this.clients.get(key), String)
      writeDirty(batch, connsKey, this.dirtyConns, (key) => this.conns.get(key), encodeConnection)
    }
    if (heartbeat) {
      const now = Date.now()
      for (const key of [topicsKey, clientsKey, connsKey]) batch.pexpire(key, this.ttlMs)
      batch.zadd(this.nodesKey, now + this.ttlMs, this.node)
      batch.zremrangebyscore(this.nodesKey, '-inf', now)
    }
    const results = await withTimeout<[Error | null, unknown][] | null>(
      batch.exec(),
      IO_TIMEOUT_MS,
      'Redis did not confirm the presence write in time.',
    )
    for (const [error] of results ?? []) if (error !== null) throw error
    this.failing = false
    if (heartbeat && !full && results?.[0]?.[1] === null) {
      // The report was gone: what is in Redis for this node is partial. Rewrite it now.
      this.full = true
      this.again = true
    }
  }
}

function bump(counts: Map<string, number>, dirty: Set<string>, key: string, by: number): void {
  const count = (counts.get(key) ?? 0) + by
  if (count > 0) counts.set(key, count)
  else counts.delete(key)
  dirty.add(key)
}

function writeAll<V>(
  batch: ChainableCommander,
  key: string,
  values: ReadonlyMap<string, V>,
  encode: (value: V) => string,
): void {
  let fields: string[] = []
  for (const [field, value] of values) {
    fields.push(field, encode(value))
    if (fields.length >= CHUNK * 2) {
      batch.hset(key, ...fields)
      fields = []
    }
  }
  if (fields.length > 0) batch.hset(key, ...fields)
}

function writeDirty<V>(
  batch: ChainableCommander,
  key: string,
  dirty: Set<string>,
  read: (field: string) => V | undefined,
  encode: (value: V) => string,
): void {
  let set: string[] = []
  let gone: string[] = []
  for (const field of dirty) {
    const value = read(field)
    if (value === undefined) gone.push(field)
    else set.push(field, encode(value))
    if (set.length >= CHUNK * 2) {
      batch.hset(key, ...set)
      set = []
    }
    if (gone.length >= CHUNK) {
      batch.hdel(key, ...gone)
      gone = []
    }
  }
  dirty.clear()
  if (set.length > 0) batch.hset(key, ...set)
  if (gone.length > 0) batch.hdel(key, ...gone)
}

function encodeConnection(connection: PresenceConnection): string {
  return JSON.stringify({
    c: connection.clientId,
    t: connection.topics,
    at: connection.connectedAt,
    a: connection.remoteAddress,
  })
}

function decodeConnection(id: string, json: string): PresenceConnection | null {
  try {
    const value = JSON.parse(json) as { c?: string; t?: string[]; at?: number; a?: string }
    return {
      id,
      clientId: value.c,
      topics: Array.isArray(value.t) ? value.t : [],
      connectedAt: typeof value.at === 'number' ? value.at : 0,
      remoteAddress: value.a,
    }
  } catch {
    return null // another version's entry: skipped, it expires with its node
  }
}

function decodeReport(json: string | null | undefined): Omit<NodeReport, 'node'> | null {
  if (typeof json !== 'string') return null
  try {
    const value = JSON.parse(json) as { reportedAt?: number; stats?: object }
    return { reportedAt: value.reportedAt ?? 0, stats: value.stats ?? {} }
  } catch {
    return null
  }
}

function asError(value: unknown): Error {
  return value instanceof Error ? value : new Error(String(value))
}
