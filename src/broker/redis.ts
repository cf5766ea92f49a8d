import { positiveInteger } from '../options.js'
import type { Redis } from 'ioredis'
import type {
  Broker,
  BrokerCommand,
  BrokerHealth,
  BrokerSink,
  Cursor,
  Publication,
  PublishRequest,
  ReplayItem,
  ResetReason,
  Resume,
} from './broker.js'

/** Options of {@link RedisBroker}. */
export interface RedisBrokerOptions {
  /**
   * The Redis client (ioredis). The broker never parses URLs: the application builds the client
   * with its own settings (Sentinel, TLS...). The broker calls `duplicate()` once for its
   * blocking reader, which must not share a connection with other commands.
   */
  readonly client: Redis
  /**
   * Prefix of every key. It contains a hash tag so that all keys share one Cluster slot.
   * @default 'ssehub:{hub}:'
   */
  readonly prefix?: string
  /** Events kept in the stream (approximate `MAXLEN ~`). @default 10000 */
  readonly historyMaxEvents?: number
  /** Oldest event kept, in ms (`MINID ~` trimming at publish); `null` for the count bound only. @default 3600000 */
  readonly historyMaxAgeMs?: number | null
  /** How long a finished topic is remembered, in ms. @default 3600000 */
  readonly endedTopicTtlMs?: number
  /** A publish that Redis has not confirmed within this time fails with 503, in ms. @default 2000 */
  readonly publishTimeoutMs?: number
  /** `BLOCK` of the reader's `XREAD`, in ms; the watchdog fires at this plus 3 s. @default 2000 */
  readonly blockMs?: number
  /** Entries read per `XREAD`. @default 500 */
  readonly readCount?: number
  /** Largest replay on resume, in entries scanned (a DoS guard); past it the client gets a reset. @default 20000 */
  readonly maxReplayScan?: number
}

/**
 * Event ids are a versioned cursor vector: `1~<partition>.<epoch>.<stream id>`. This release
 * keeps one partition (`0`), so a vector has one element; the format is the public contract that
 * a partitioned layout extends (`1~0.e.1-0~17.e.5-2`), and ids are opaque to clients anyway.
 */
const idPattern = /^1~0\.([0-9a-z]{1,16})\.(\d{1,20})-(\d{1,20})$/

interface StreamId {
  readonly ms: bigint
  readonly seq: bigint
}

function parseStreamId(value: string): StreamId {
  const dash = value.indexOf('-')
  return { ms: BigInt(value.slice(0, dash)), seq: BigInt(value.slice(dash + 1)) }
}

function compareIds(a: StreamId, b: StreamId): number {
  if (a.ms !== b.ms) return a.ms < b.ms ? -1 : 1
  if (a.seq !== b.seq) return a.seq < b.seq ? -1 : 1
  return 0
}

interface RedisPublication extends Publication {
  readonly epoch: string
  readonly streamId: StreamId
}

class RedisCursor implements Cursor {
  constructor(
    private epoch: string,
    private position: StreamId,
    private raw: string,
  ) {}

  advance(publication: Publication): string | null {
    const pub = publication as RedisPublication
    // A publication of a newer epoch (Redis lost its data) starts a new log: take it.
    if (pub.epoch === this.epoch && compareIds(pub.streamId, this.position) <= 0) return null
    this.epoch = pub.epoch
    this.position = pub.streamId
    this.raw = `${pub.streamId.ms}-${pub.streamId.seq}`
    return pub.id
  }

  get id(): string {
    return `1~0.${this.epoch}.${this.raw}`
  }
}

// Publish: create the epoch if Redis lost it, append, trim by age, track finished topics.
// KEYS: log, meta, then one `end:` key per topic. ARGV: maxlen, epoch candidate, minid ('' = no
// age trim), ended ttl ms, close ('1'/'0'), time, then the entry's field/value pairs.
const publishScript = `
local epoch = redis.call('HGET', KEYS[2], 'e')
if not epoch then
  epoch = ARGV[2]
  redis.call('HSET', KEYS[2], 'e', epoch)
end
-- 'n' numbers the entries without gaps, so a reader knows when trimming overtook it.
local fields = {'n', tostring(redis.call('HINCRBY', KEYS[2], 'n', 1))}
for i = 7, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
if ARGV[3] ~= '' then redis.call('XTRIM', KEYS[1], 'MINID', '~', ARGV[3]) end
for i = 3, #KEYS do
  if ARGV[5] == '1' then
    redis.call('DEL', KEYS[i])
    redis.call('HSET', KEYS[i], 'i', id, unpack(fields))
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  else
    redis.call('DEL', KEYS[i])
  end
end
return {id, epoch}
`

/** Flat `[k, v, k, v]` (RESP2 / legacy mapping) or an object (RESP3 mapping) to a record. */
function toRecord(reply: unknown): Record<string, unknown> {
  if (Array.isArray(reply)) {
    const out: Record<string, unknown> = {}
    for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = reply[i + 1]
    return out
  }
  if (reply instanceof Map) return Object.fromEntries(reply as Map<string, unknown>)
  return (reply ?? {}) as Record<string, unknown>
}

type Entry = [id: string, fields: string[]]

/**
 * The Redis broker: every node appends to and tails one Redis Stream, which is both the live path
 * and the history. Nodes hold no durable state; ids come from Redis, so a client resumes on any
 * node. See `docs/deployment.md` for the layout, the limits and the road to many nodes.
 */
export class RedisBroker implements Broker {
  private readonly client: Redis
  private reader: Redis | null = null
  private readonly logKey: string
  private readonly metaKey: string
  private readonly endPrefix: string
  private readonly maxEvents: number
  private readonly maxAgeMs: number | null
  private readonly endedTtlMs: number
  private readonly publishTimeoutMs: number
  private readonly blockMs: number
  private readonly readCount: number
  private readonly maxReplayScan: number
  private sink: BrokerSink | null = null
  private epoch = ''
  /** The last entry the reader delivered: every live publication is after it. */
  private position: StreamId = { ms: 0n, seq: 0n }
  private positionRaw = '0-0'
  /** The gapless number (`n`) of the last entry read; `null` until known. */
  private lastNumber: number | null = null
  private closed = false
  private readerHealthy = false
  private lastError: string | null = null
  private loop: Promise<void> | null = null

  constructor(options: RedisBrokerOptions) {
    this.client = options.client
    const prefix = options.prefix ?? 'ssehub:{hub}:'
    this.logKey = `${prefix}log`
    this.metaKey = `${prefix}meta`
    this.endPrefix = `${prefix}end:`
    this.maxEvents = positiveInteger('historyMaxEvents', options.historyMaxEvents ?? 10_000)
    const age = options.historyMaxAgeMs === undefined ? 3_600_000 : options.historyMaxAgeMs
    this.maxAgeMs = age === null ? null : positiveInteger('historyMaxAgeMs', age)
    this.endedTtlMs = positiveInteger('endedTopicTtlMs', options.endedTopicTtlMs ?? 3_600_000)
    this.publishTimeoutMs = positiveInteger('publishTimeoutMs', options.publishTimeoutMs ?? 2_000)
    this.blockMs = positiveInteger('blockMs', options.blockMs ?? 2_000)
    this.readCount = positiveInteger('readCount', options.readCount ?? 500)
    this.maxReplayScan = positiveInteger('maxReplayScan', options.maxReplayScan ?? 20_000)
  }

  async start(sink: BrokerSink): Promise<void> {
    this.sink = sink
    // Resolve the tail explicitly (never `$`: re-issuing `$` loses entries between reads).
    await this.syncEpoch()
    const last = (await this.client.xrevrange(this.logKey, '+', '-', 'COUNT', 1)) as Entry[]
    this.setPosition(last[0]?.[0] ?? '0-0')
    this.lastNumber = last[0] === undefined ? 0 : entryNumber(last[0][1])
    this.readerHealthy = true
    this.loop = this.readLoop()
  }

  async publish(request: PublishRequest): Promise<Publication> {
    const fields = ['k', request.keys.join('\n')]
    if (request.event !== undefined) fields.push('e', request.event)
    if (request.retry !== undefined) fields.push('r', String(request.retry))
    if (request.close === true) fields.push('c', '1')
    fields.push('d', request.data)
    const topicKeys = request.keys.filter((key) => !key.startsWith('@'))
    const [id, epoch] = await this.append(topicKeys, request.close === true, fields)
    return this.toPublication(epoch, id, fields)
  }

  async resume(keys: readonly string[], lastEventId: string | undefined): Promise<Resume> {
    // The snapshot, taken synchronously: everything after it reaches the hub live.
    const epoch = this.epoch
    const snapshot = this.position
    const snapshotRaw = this.positionRaw
    let reset: ResetReason | null = null
    let from: StreamId | null = null
    let fromRaw = ''
    if (lastEventId !== undefined) {
      const match = idPattern.exec(lastEventId)
      if (match === null) reset = 'unknown'
      else if (match[1] !== epoch) reset = 'epoch'
      else {
        fromRaw = `${match[2]}-${match[3]}`
        from = parseStreamId(fromRaw)
      }
    }
    if (from !== null) reset = await this.checkContinuity(from)
    const wanted = new Set(keys)
    const replay: ReplayItem[] = []
    let cursorPosition = snapshot
    let cursorRaw = snapshotRaw
    if (reset === null && from !== null) {
      if (compareIds(from, snapshot) >= 0) {
        // The client saw more than this node read so far (it came from a faster node).
        cursorPosition = from
        cursorRaw = fromRaw
      } else {
        let start = `(${fromRaw}`
        let scanned = 0
        for (;;) {
          const page = (await this.client.xrange(
            this.logKey,
            start,
            snapshotRaw,
            'COUNT',
            1000,
          )) as Entry[]
          for (const [id, fields] of page) {
            const publication = this.toPublication(epoch, id, fields)
            if (publication === null) continue
            if (publication.keys.some((key) => wanted.has(key)))
              replay.push({ publication, id: publication.id })
          }
          scanned += page.length
          if (page.length < 1000) break
          if (scanned >= this.maxReplayScan) {
            reset = 'expired'
            replay.length = 0
            break
          }
          start = `(${page[page.length - 1]![0]}`
        }
      }
    }
    const ended = new Set<string>()
    const topicKeys = keys.filter((key) => !key.startsWith('@'))
    if (topicKeys.length > 0) {
      const pipeline = this.client.pipeline()
      for (const key of topicKeys) pipeline.hgetall(this.endPrefix + key)
      const results = (await pipeline.exec()) ?? []
      const finals: RedisPublication[] = []
      topicKeys.forEach((key, index) => {
        const record = toRecord(results[index]?.[1])
        const id = record.i
        if (typeof id !== 'string') return
        const finalId = parseStreamId(id)
        if (from !== null && reset === null) {
          if (compareIds(finalId, from) <= 0) ended.add(key)
          return // otherwise it is in the replay or still to come live
        }
        const fields = Object.entries(record)
          .filter(([name]) => name !== 'i')
          .flat() as string[]
        const publication = this.toPublication(epoch, id, fields)
        if (publication !== null && !finals.some((p) => p.id === publication.id))
          finals.push(publication)
      })
      finals.sort((a, b) => compareIds(a.streamId, b.streamId))
      replay.unshift(...finals.map((publication) => ({ publication, id: publication.id })))
    }
    return {
      cursor: new RedisCursor(epoch, cursorPosition, cursorRaw),
      replay,
      reset: reset === null ? null : { reason: reset, keys },
      ended,
    }
  }

  async command(command: BrokerCommand): Promise<void> {
    // Commands travel in the stream too: every node sees them in order, no second channel.
    await this.append([], false, ['x', JSON.stringify(command)])
  }

  health(): BrokerHealth {
    const ok = !this.closed && this.client.status === 'ready' && this.readerHealthy
    return {
      ok,
      broker: 'redis',
      details: {
        status: this.client.status,
        reader: this.readerHealthy ? 'reading' : 'reconnecting',
        epoch: this.epoch,
        position: this.positionRaw,
        ...(this.lastError === null ? {} : { lastError: this.lastError }),
      },
    }
  }

  async close(): Promise<void> {
    this.closed = true
    this.reader?.disconnect()
    await this.loop
    this.sink = null
  }

  /** Runs the publish script: resolves with the entry id and the epoch once Redis has it. */
  private async append(
    topicKeys: readonly string[],
    close: boolean,
    fields: readonly string[],
  ): Promise<[string, string]> {
    if (this.closed) throw new Error('The Redis broker is closed.')
    if (this.client.status !== 'ready')
      throw new Error(`Redis is not connected (${this.client.status}).`)
    const now = Date.now()
    const minId = this.maxAgeMs === null ? '' : `${now - this.maxAgeMs}-0`
    const call = this.client.eval(
      publishScript,
      2 + topicKeys.length,
      this.logKey,
      this.metaKey,
      ...topicKeys.map((key) => this.endPrefix + key),
      String(this.maxEvents),
      newEpoch(),
      minId,
      String(this.endedTtlMs),
      close ? '1' : '0',
      String(now),
      ...fields,
    ) as Promise<[string, string]>
    return withTimeout(call, this.publishTimeoutMs, 'Redis did not confirm the publish in time.')
  }

  /**
   * Whether the log still holds everything after `from`: `null` when it does, else why not.
   * - beyond Redis' `last-generated-id`: entries lost in a failover (or a made-up id);
   * - before `max-deleted-entry-id`, or before the first kept entry after a trim: entries after it
   *   are gone. (Redis 7.0 does not record trimmed ids, so a cursor sitting exactly on the last
   *   trimmed entry also counts: conservative, never a silent gap.)
   */
  private async checkContinuity(from: StreamId): Promise<ResetReason | null> {
    const info = toRecord(await this.client.call('XINFO', 'STREAM', this.logKey))
    const text = (value: unknown, fallback: string): string =>
      typeof value === 'string' || typeof value === 'number' ? String(value) : fallback
    const lastGenerated = parseStreamId(text(info['last-generated-id'], '0-0'))
    const maxDeleted = parseStreamId(text(info['max-deleted-entry-id'], '0-0'))
    const firstEntry = Array.isArray(info['first-entry'])
      ? text((info['first-entry'] as unknown[])[0], '0-0')
      : '0-0'
    const first = parseStreamId(text(info['recorded-first-entry-id'], firstEntry))
    const trimmed = Number(text(info['entries-added'], '0')) > Number(text(info.length, '0'))
    if (compareIds(from, lastGenerated) > 0) return 'unknown'
    if (compareIds(from, maxDeleted) < 0 || (trimmed && compareIds(from, first) < 0))
      return 'expired'
    return null
  }

  private setPosition(raw: string): void {
    this.positionRaw = raw
    this.position = parseStreamId(raw)
  }

  private async syncEpoch(): Promise<boolean> {
    await this.client.hsetnx(this.metaKey, 'e', newEpoch())
    const epoch = (await this.client.hget(this.metaKey, 'e')) ?? ''
    const changed = this.epoch !== '' && epoch !== this.epoch
    this.epoch = epoch
    return changed
  }

  private toPublication(epoch: string, id: string, fields: readonly string[]): RedisPublication
  private toPublication(
    epoch: string,
    id: string,
    fields: readonly string[],
  ): RedisPublication | null
  private toPublication(
    epoch: string,
    id: string,
    fields: readonly string[],
  ): RedisPublication | null {
    let keys: string[] | undefined
    let event: string | undefined
    let retry: number | undefined
    let close = false
    let data = ''
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const value = fields[i + 1]!
      switch (fields[i]) {
        case 'k':
          keys = value.split('\n')
          break
        case 'e':
          event = value
          break
        case 'r':
          retry = Number(value)
          break
        case 'c':
          close = value === '1'
          break
        case 'd':
          data = value
          break
      }
    }
    if (keys === undefined) return null // a command entry
    const streamId = parseStreamId(id)
    return {
      id: `1~0.${epoch}.${id}`,
      keys,
      event,
      data,
      retry,
      close,
      time: Number(streamId.ms),
      epoch,
      streamId,
    }
  }

  /**
   * The one blocking reader of this node: `XREAD BLOCK` from an explicit cursor, fan-out in the
   * hub. A watchdog destroys a read that outlives BLOCK + 3 s (half-open sockets); any failure
   * retries from the cursor with backoff, so a Redis blip costs nothing but latency.
   */
  private async readLoop(): Promise<void> {
    let backoff = 100
    let needsCheck = false
    while (!this.closed) {
      try {
        if (this.reader === null) {
          this.reader = this.client.duplicate({ maxRetriesPerRequest: 0, enableOfflineQueue: true })
          this.reader.on('error', (error: Error) => (this.lastError = error.message))
        }
        if (needsCheck) {
          // After a failure, Redis may have restarted without its data: a new epoch means every
          // connection here may have missed events. Tell them (reset) and read the new log.
          if (await this.syncEpoch()) {
            this.setPosition('0-0')
            this.lastNumber = 0
            this.sink?.reset('epoch')
          }
          needsCheck = false
        }
        const reply = await withTimeout(
          this.reader.xread(
            'COUNT',
            this.readCount,
            'BLOCK',
            this.blockMs,
            'STREAMS',
            this.logKey,
            this.positionRaw,
          ),
          this.blockMs + 3_000,
          'XREAD watchdog fired',
        )
        this.readerHealthy = true
        backoff = 100
        for (const [, entries] of (reply ?? []) as [string, Entry[]][]) {
          for (const [id, fields] of entries) {
            const n = entryNumber(fields)
            // A hole in the numbering: trimming overtook this reader (a node stalled longer than
            // the history: GC pause, overload, SIGSTOP). The reset precedes the events after it.
            if (n !== null && this.lastNumber !== null && n > this.lastNumber + 1)
              this.sink?.reset('expired')
            if (n !== null) this.lastNumber = n
            this.setPosition(id)
            this.dispatch(id, fields)
          }
        }
      } catch (error) {
        if (this.closed) break
        this.readerHealthy = false
        this.lastError = (error as Error).message
        needsCheck = true
        this.reader?.disconnect()
        this.reader = null
        await new Promise((resolve) => setTimeout(resolve, backoff))
        backoff = Math.min(backoff * 2, 2_000)
      }
    }
    this.reader?.disconnect()
    this.reader = null
  }

  private dispatch(id: string, fields: readonly string[]): void {
    const sink = this.sink
    if (sink === null) return
    const publication = this.toPublication(this.epoch, id, fields)
    if (publication !== null) {
      sink.publication(publication)
      return
    }
    const index = fields.indexOf('x')
    if (index === -1) return
    try {
      sink.command(JSON.parse(fields[index + 1]!) as BrokerCommand)
    } catch (error) {
      sink.error(new Error(`Ignored a malformed command entry ${id}: ${(error as Error).message}`))
    }
  }
}

function entryNumber(fields: readonly string[]): number | null {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'n') return Number(fields[i + 1])
  return null
}

function newEpoch(): string {
  return Math.random().toString(36).slice(2, 10).padEnd(8, '0')
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}
