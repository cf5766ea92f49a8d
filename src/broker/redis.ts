import { randomUUID } from 'node:crypto'
import { ErrorCodes, SseError } from '../errors.js'
import { idempotencyConflict, publishFingerprint } from './idempotency.js'
import type {
  Broker,
  BrokerCommand,
  BrokerHealth,
  BrokerSink,
  Publication,
  PublishRequest,
  ReplayItem,
  ResetReason,
  Resume,
  StartFrom,
  TopicState,
} from './broker.js'
import {
  RedisCursor,
  compareIds,
  entryFields,
  entryNumber,
  idPattern,
  newEpoch,
  parseStreamId,
  predecessor,
  toPublication,
  toRecord,
  type Entry,
  type RedisPublication,
  type StreamId,
  withTimeout,
} from './redis-log.js'
import { readerOf, type RedisClient } from './redis-client.js'
import {
  PublishBatcher,
  deferred,
  runPublishBatch,
  type Append,
  type AppendResult,
  type ReadBack,
} from './redis-batch.js'
import { resolveRedisBrokerOptions, type RedisBrokerOptions } from './redis-options.js'
import { RedisPresence } from './redis-presence.js'

// The `ssehub/redis` entry point: the broker, its options and their defaults.
export {
  REDIS_BROKER_DEFAULTS,
  resolveRedisBrokerOptions,
  type RedisBrokerOptions,
  type ResolvedRedisBrokerOptions,
} from './redis-options.js'
export { hashTag, type RedisClient } from './redis-client.js'

/**
 * The Redis broker: every node appends to and tails one Redis Stream, which is both the live path
 * and the history. Nodes hold no durable state; ids come from Redis, so a client resumes on any
 * node. See `docs/deployment.md` for the layout, the limits and the road to many nodes.
 */
export class RedisBroker implements Broker {
  /** Every node's connections, online counts and stats, kept in Redis with expiry. */
  readonly presence: RedisPresence
  private readonly client: RedisClient
  private reader: RedisClient | null = null
  private readonly logKey: string
  private readonly metaKey: string
  private readonly endPrefix: string
  private readonly idemPrefix: string
  private readonly idempotencyWindowMs: number
  private readonly maxEvents: number
  private readonly maxAgeMs: number | null
  private readonly endedTtlMs: number
  private readonly publishTimeoutMs: number
  private readonly blockMs: number
  private readonly readCount: number
  private readonly maxReplayScan: number
  private readonly readCoalesceMs: number
  private sink: BrokerSink | null = null
  private epoch = ''
  /** The last entry the reader delivered: every live publication is after it. */
  private position: StreamId = { ms: 0n, seq: 0n }
  private positionRaw = '0-0'
  /** The gapless number (`n`) of the last entry read; `null` until known. */
  private lastNumber: number | null = null
  private closed = false
  private readerHealthy = false
  /** Why the reader fails, and since when; `null` while it reads (health() shows the present). */
  private lastError: { readonly message: string; readonly at: number } | null = null
  /** The reader connection's last error of this outage (`connect ECONNREFUSED ...`). */
  private connectionError: string | null = null
  private loop: Promise<void> | null = null
  /** Resolved by close(): ends the reader's waits for this node's batches. */
  private readonly closing = deferred()
  /**
   * A batch's answer could not be delivered (see {@link RedisBroker.deliverRead}): the reader
   * reads instead of leaving the reading to the answers.
   */
  private readBehind = false
  /**
   * The epoch may have changed (a publish answer came from another one, or the log's numbering
   * went back): the reader checks it before it delivers more.
   */
  private epochStale = false
  /** The position at which the reader last checked the epoch for numbering that went back. */
  private epochCheckedAt: string | null = null
  /** This broker's read cursor in Redis: where the next batch's answer starts reading back. */
  private readonly cursorKey: string
  /** The publishes and commands of this turn, sent to Redis in one round trip (redis-batch.ts). */
  private readonly batcher: PublishBatcher

  /** @throws {TypeError} or {@link RangeError} for a bad option, naming it. */
  constructor(options: RedisBrokerOptions) {
    const resolved = resolveRedisBrokerOptions(options)
    this.client = resolved.client
    this.logKey = `${resolved.prefix}log`
    this.metaKey = `${resolved.prefix}meta`
    this.endPrefix = `${resolved.prefix}end:`
    this.idemPrefix = `${resolved.prefix}idem:`
    // One per broker (not per node id: two processes with one configured id must not share it).
    this.cursorKey = `${resolved.prefix}cursor:${randomUUID()}`
    this.idempotencyWindowMs = resolved.idempotencyWindowMs
    this.maxEvents = resolved.historyMaxEvents
    this.maxAgeMs = resolved.historyMaxAgeMs
    this.endedTtlMs = resolved.endedTopicTtlMs
    this.publishTimeoutMs = resolved.publishTimeoutMs
    this.blockMs = resolved.blockMs
    this.readCount = resolved.readCount
    this.maxReplayScan = resolved.maxReplayScan
    this.readCoalesceMs = resolved.readCoalesceMs
    this.batcher = this.createBatcher(
      resolved.maxPublishBatchEvents,
      resolved.maxPublishBatchesInFlight,
    )
    this.presence = new RedisPresence({
      client: resolved.client,
      prefix: resolved.prefix,
      node: resolved.nodeId,
      ttlMs: resolved.presenceTtlMs,
      flushMs: resolved.presenceFlushMs,
      reportError: (error) => this.sink?.error(error),
    })
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
    const fields = entryFields(request)
    const key = request.idempotencyKey
    const [id, epoch, outcome] = await this.append(
      request.keys,
      request.close === true,
      fields,
      key === undefined ? null : { key, fingerprint: publishFingerprint(request) },
    )
    if (outcome === 'conflict') throw idempotencyConflict(key!)
    // Its fields carry keys: a publication, never a command entry.
    const publication = toPublication(epoch, id, fields)!
    // A retry: the first publish's id (its event is the same: the fingerprints matched).
    return outcome === 'duplicate' ? { ...publication, duplicate: true } : publication
  }

  async resume(
    keys: readonly string[],
    lastEventId: string | undefined,
    start?: StartFrom,
  ): Promise<Resume> {
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
    if (lastEventId === undefined && start !== undefined) {
      replay.push(...(await this.startingEvents(epoch, wanted, start, snapshotRaw)))
    } else if (reset === null && from !== null) {
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
            const publication = toPublication(epoch, id, fields)
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
        const publication = toPublication(epoch, id, fields)
        if (
          publication !== null &&
          !finals.some((p) => p.id === publication.id) &&
          !replay.some((item) => item.id === publication.id)
        )
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

  /**
   * What `start` asks for, read backwards from the snapshot in pages: every matching entry, the
   * last N, or the latest per key; oldest first. Bounded by `maxReplayScan` entries read.
   */
  private async startingEvents(
    epoch: string,
    wanted: ReadonlySet<string>,
    start: StartFrom,
    snapshotRaw: string,
  ): Promise<ReplayItem[]> {
    const picked: ReplayItem[] = []
    const missing = start === 'newest' ? new Set(wanted) : null
    missing?.delete('@all')
    let end = snapshotRaw
    let scanned = 0
    while (scanned < this.maxReplayScan && (missing === null || missing.size > 0)) {
      if (end === '0-0') break
      const page = (await this.client.xrevrange(this.logKey, end, '-', 'COUNT', 1000)) as Entry[]
      for (const [id, fields] of page) {
        const publication = toPublication(epoch, id, fields)
        if (publication === null) continue
        if (missing !== null) {
          let latest = false
          for (const key of publication.keys) if (missing.delete(key)) latest = true
          if (latest) picked.push({ publication, id: publication.id })
          if (missing.size === 0) break
        } else if (publication.keys.some((key) => wanted.has(key))) {
          picked.push({ publication, id: publication.id })
          if (typeof start === 'number' && picked.length >= start) break
        }
      }
      scanned += page.length
      if (page.length < 1000 || (typeof start === 'number' && picked.length >= start)) break
      end = `(${page[page.length - 1]![0]}`
    }
    return picked.reverse()
  }

  /** The latest entry of topic `key` (read back at most `maxReplayScan` entries), and its end. */
  async topicState(key: string): Promise<TopicState> {
    const final = toRecord(await this.client.hgetall(this.endPrefix + key))
    if (typeof final.i === 'string') {
      const publication = toPublication(this.epoch, final.i, ['k', key])
      return { lastEventId: publication?.id ?? null, ended: true }
    }
    const [latest] = await this.startingEvents(
      this.epoch,
      new Set([key]),
      'newest',
      this.positionRaw,
    )
    return { lastEventId: latest?.id ?? null, ended: false }
  }

  async command(command: BrokerCommand): Promise<void> {
    // Commands travel in the stream too: every node sees them in order, no second channel.
    await this.append([], false, ['x', JSON.stringify(command)], null)
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
        // Only while degraded: after a recovery an old error would read as a current one.
        ...(ok || this.lastError === null
          ? {}
          : {
              lastError: this.lastError.message,
              lastErrorAt: new Date(this.lastError.at).toISOString(),
            }),
      },
    }
  }

  async close(): Promise<void> {
    await this.presence.close()
    this.closed = true
    this.closing.resolve()
    // Disconnected once, here (it ends the blocking read): ioredis arms a 2 s timer on every
    // disconnect() that only the socket's close clears, so a second one, after the close, would
    // hold the process for 2 s after everything else has ended.
    const reader = this.reader
    this.reader = null
    reader?.disconnect()
    await this.loop
    this.sink = null
  }

  /**
   * Queues an entry for this turn's publish script call: resolves with its entry id and the epoch
   * once Redis has it. Refuses at once while Redis is away (the caller answers 503 now).
   */
  private append(
    keys: readonly string[],
    close: boolean,
    fields: readonly string[],
    once: { readonly key: string; readonly fingerprint: string } | null,
  ): Promise<AppendResult> {
    if (this.closed) return Promise.reject(new Error('The Redis broker is closed.'))
    if (this.client.status !== 'ready')
      return Promise.reject(new Error(`Redis is not connected (${this.client.status}).`))
    const endKeys: string[] = []
    for (const key of keys) if (!key.startsWith('@')) endKeys.push(this.endPrefix + key)
    return this.batcher.add({
      endKeys,
      close,
      fields,
      once:
        once === null ? null : { key: this.idemPrefix + once.key, fingerprint: once.fingerprint },
    })
  }

  /** The batcher of this broker: one publish script call per turn, on the command connection. */
  private createBatcher(maxEvents: number, maxInFlight: number): PublishBatcher {
    const context = {
      client: this.client,
      logKey: this.logKey,
      metaKey: this.metaKey,
      cursorKey: this.cursorKey,
      maxEvents: this.maxEvents,
      maxAgeMs: this.maxAgeMs,
      endedTtlMs: this.endedTtlMs,
      idempotencyWindowMs: this.idempotencyWindowMs,
      readCount: this.readCount,
      cursorTtlMs: CURSOR_TTL_MS,
      newEpoch,
      // Read back only while the reader is sound (after a failure it first checks the epoch).
      readFrom: () => (this.readerHealthy && this.sink !== null ? this.positionRaw : null),
    }
    return new PublishBatcher(
      (appends, timeoutMs) => {
        // Closed, or Redis went away, while the batch waited for its turn: nothing is sent.
        if (this.closed) return Promise.reject(new Error('The Redis broker is closed.'))
        if (this.client.status !== 'ready')
          return Promise.reject(new Error(`Redis is not connected (${this.client.status}).`))
        return runPublishBatch(context, appends, timeoutMs).then(({ results, read }) => {
          if (read !== null) this.deliverRead(read, appends, results)
          return results
        })
      },
      maxEvents,
      this.publishTimeoutMs,
      maxInFlight,
    )
  }

  /**
   * Whether the log still holds everything after `from`: `null` when it does, else why not.
   * - beyond Redis' `last-generated-id`: entries lost in a failover (or a made-up id);
   * - within the log but naming no entry (nor the id right before one): an entry lost in a
   *   failover that newer entries have overtaken since (or a made-up id);
   * - before `max-deleted-entry-id`, or before the first kept entry after a trim: entries after it
   *   are gone. (Redis 7.0 does not record trimmed ids, so a cursor on a trimmed entry counts
   *   unless it is the stream id right before the first kept one: nothing can lie between those.)
   */
  private async checkContinuity(from: StreamId): Promise<ResetReason | null> {
    let reply: unknown
    // The first entry at or after `from`, asked in the same round trip as XINFO.
    const raw = `${from.ms}-${from.seq}`
    const after = this.client.xrange(this.logKey, raw, '+', 'COUNT', 1)
    let next: Entry[]
    try {
      ;[reply, next] = await Promise.all([
        this.client.call('XINFO', 'STREAM', this.logKey),
        after as Promise<Entry[]>,
      ])
    } catch (error) {
      void after.catch(() => {})
      // No log yet (a new epoch before its first publish): only its start, `0-0`, is a position.
      if (!(error instanceof Error) || !/no such key/i.test(error.message)) throw error
      return from.ms === 0n && from.seq === 0n ? null : 'unknown'
    }
    const info = toRecord(reply)
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
    // A cursor right before the first kept entry (a reset's id) misses nothing: no id lies between.
    if (compareIds(from, maxDeleted) < 0 || (trimmed && compareIds(from, predecessor(first)) < 0))
      return 'expired'
    // Within the log but not in it: the entry was lost in a failover (or the id is made up), and
    // newer entries have since overtaken it. Every id a connection holds is an entry's id or the
    // id right before one (a reset's), so anything else would be a silent skip: reset instead.
    if (!(from.ms === 0n && from.seq === 0n)) {
      const at = next[0] === undefined ? null : parseStreamId(next[0][0])
      // Nothing at or after it: fine only for the newest id ever generated (all entries aged out).
      if (at === null)
        return compareIds(from, lastGenerated) === 0 ? null : trimmed ? 'expired' : 'unknown'
      if (compareIds(at, from) !== 0 && compareIds(predecessor(at), from) !== 0) return 'unknown'
    }
    return null
  }

  private setPosition(raw: string): void {
    this.positionRaw = raw
    this.position = parseStreamId(raw)
  }

  private async syncEpoch(): Promise<boolean> {
    // One transaction: a FLUSHALL between the two would leave no epoch to read.
    const replies = await this.client
      .multi()
      .hsetnx(this.metaKey, 'e', newEpoch())
      .hget(this.metaKey, 'e')
      .exec()
    const [error, value] = replies?.[1] ?? [new Error('Redis discarded the epoch transaction.')]
    if (error) throw error
    const epoch = typeof value === 'string' ? value : ''
    const changed = this.epoch !== '' && epoch !== this.epoch
    this.epoch = epoch
    return changed
  }

  /**
   * The one blocking reader of this node: `XREAD BLOCK` from an explicit cursor, fan-out in the
   * hub. A watchdog destroys a read that outlives BLOCK + 3 s (half-open sockets); any failure
   * retries from the cursor with backoff, so a Redis blip costs nothing but latency. The sink
   * hears of an outage once when the reader starts failing (`unavailable`) and once when it reads
   * again (`recovered`).
   */
  private async readLoop(): Promise<void> {
    let backoff = 100
    let needsCheck = false
    while (!this.closed) {
      try {
        if (this.reader === null) {
          this.reader = readerOf(this.client)
          // While failing, the reconnecting client's errors (ECONNREFUSED...) are the current cause.
          this.reader.on('error', (error: Error) => {
            this.connectionError = error.message
            if (!this.readerHealthy) this.lastError = { message: error.message, at: Date.now() }
          })
        }
        if (needsCheck || this.epochStale) {
          this.epochStale = false
          // After a failure, Redis may have restarted without its data: a new epoch means every
          // connection here may have missed events. Tell them (reset) and read the new log.
          if (await this.syncEpoch()) {
            this.setPosition('0-0')
            this.lastNumber = 0
            this.sink?.reset('epoch', `1~0.${this.epoch}.0-0`)
          }
          needsCheck = false
        }
        // While this node's batches are on their way, their answers read back for it (see
        // deliverRead): one round trip per batch instead of two, and its own entries are not
        // sent back to it. The reader reads again once they are answered, or at once when an
        // answer could not be delivered.
        if (this.readerHealthy && !this.readBehind) {
          const answered = this.batcher.answered()
          if (answered !== null) {
            // Or until close(): a batch in flight may take up to publishTimeoutMs.
            await Promise.race([answered, this.closing.promise])
            continue
          }
          // A node that just published usually publishes again within a turn or two: a blocking
          // XREAD sent now would be woken by that batch and return its entries a second time.
          // Waits for it until `readCoalesceMs` after the last publish; entries of other nodes
          // wait as long at most.
          const left = this.batcher.lastAppendAt + this.readCoalesceMs - performance.now()
          if (left > 0) {
            await Promise.race([this.batcher.nextAppend(left), this.closing.promise])
            continue
          }
        }
        // After a failure the first read does not block: it answers at once, so recovery is known
        // (and /healthz is ok) within a round trip, not after BLOCK ms of an idle stream.
        const read = this.readerHealthy
          ? this.reader.xread(
              'COUNT',
              this.readCount,
              'BLOCK',
              this.blockMs,
              'STREAMS',
              this.logKey,
              this.positionRaw,
            )
          : this.reader.xread('COUNT', this.readCount, 'STREAMS', this.logKey, this.positionRaw)
        const reply = await withTimeout(read, this.blockMs + 3_000, 'XREAD watchdog fired')
        if (!this.readerHealthy) {
          this.readerHealthy = true
          this.lastError = null
          this.connectionError = null
          this.sink?.recovered()
        }
        backoff = 100
        let entries = entriesOf(reply)
        if (entries.length > 0 && this.readCoalesceMs > 0) entries = await this.coalesce(entries)
        // Read across an epoch change a publish answer saw: checked first (loop top).
        if (this.epochStale) continue
        // Numbered from below: a failover lost entries (an `unknown` reset, in take()), or Redis
        // lost the whole log while connected (FLUSHALL, eviction) and a new one began: an epoch
        // reset, and ids of the new epoch. Which one, the epoch says: checked once per position.
        // (Entries at or before the position were delivered already, by a publish's answer.)
        const next = entries.find(([id]) => compareIds(parseStreamId(id), this.position) > 0)
        const n = next === undefined ? null : entryNumber(next[1])
        if (
          n !== null &&
          this.lastNumber !== null &&
          n <= this.lastNumber &&
          this.epochCheckedAt !== this.positionRaw
        ) {
          this.epochCheckedAt = this.positionRaw
          this.epochStale = true
          continue
        }
        // A full read stops short of the log's end: read on before waiting for anything.
        this.readBehind = entries.length >= this.readCount
        for (const [id, fields] of entries) this.take(id, fields)
      } catch (error) {
        if (this.closed) break
        const failure = error instanceof Error ? error : new Error(String(error))
        // ioredis says a lost connection in its own terms (retry limit, offline queue): said
        // plainly instead, with the connection's own error when it had one.
        const lost = this.client.status !== 'ready' || isConnectionLoss(failure)
        const reason = lost
          ? (this.connectionError ?? 'the connection to Redis was lost')
          : failure.message
        this.lastError = { message: reason, at: Date.now() }
        // Reported once per outage, when the reader goes from reading to failing: the retries
        // that follow (every 100 ms to 2 s) are the same outage, visible in health() meanwhile.
        if (this.readerHealthy) {
          // The cause says why in words (its own cause is ioredis' error).
          const cause = reason === failure.message ? failure : new Error(reason, { cause: failure })
          this.sink?.unavailable(
            new SseError(
              ErrorCodes.BROKER_UNAVAILABLE,
              `The Redis reader failed (${reason}); live events from Redis wait until it reads again. It retries from its position with backoff.`,
              { cause },
            ),
          )
        }
        this.readerHealthy = false
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

  /**
   * Delivers one entry of the log, read by the reader or read back in a batch's answer: each
   * entry once, in log order (one already delivered by the other path is skipped). Decoded once,
   * here: the hub shares the publication and its frame among recipients.
   */
  private take(id: string, fields: readonly string[]): void {
    const streamId = parseStreamId(id)
    if (compareIds(streamId, this.position) <= 0) return
    const publication = toPublication(this.epoch, id, fields, streamId)
    const n = entryNumber(fields)
    // A hole in the numbering: trimming overtook this reader (a node stalled longer than the
    // history: GC pause, overload, SIGSTOP). The reset precedes the events after it. Its id is
    // the position right before this entry: a resume from it replays this entry on.
    if (n !== null && this.lastNumber !== null && n > this.lastNumber + 1) {
      const before = predecessor(streamId)
      this.sink?.reset('expired', `1~0.${this.epoch}.${before.ms}-${before.seq}`)
    } else if (n !== null && this.lastNumber !== null && n <= this.lastNumber) {
      // Numbered again from below: the log lost entries this node delivered (a failover to a
      // replica that lacked them; a restart that lost its last writes). Connections hold ids the
      // log no longer has: a reset before the log's new entries.
      const before = predecessor(streamId)
      this.sink?.reset('unknown', `1~0.${this.epoch}.${before.ms}-${before.seq}`)
    }
    if (n !== null) this.lastNumber = n
    this.positionRaw = id
    this.position = streamId
    this.dispatch(id, fields, publication)
  }

  /**
   * What a batch's answer read back (see {@link publishBatchScript}): delivered before its callers
   * hear of it, as the memory broker delivers a publish before answering it. The batch's own
   * entries come as ids; their fields are the appends'. Not delivered, and left to the reader,
   * when Redis changed epoch or when the read starts after this node's position (an earlier
   * answer that read back never came: a batch that timed out).
   */
  private deliverRead(
    read: ReadBack,
    appends: readonly Append[],
    results: readonly AppendResult[],
  ): void {
    if (this.closed || this.sink === null) return
    if (read.epoch !== this.epoch) {
      // Redis lost the log without dropping the connection (FLUSHALL, eviction) and the script
      // started a new one: the reader checks the epoch and resets before anything of it.
      this.epochStale = true
      this.readBehind = true
      return
    }
    if (compareIds(parseStreamId(read.from), this.position) > 0) {
      this.readBehind = true
      return
    }
    let own: Map<string, readonly string[]> | null = null
    let others = 0
    for (const [id, fieldsOrN] of read.entries) {
      if (typeof fieldsOrN !== 'string') {
        this.take(id, fieldsOrN)
        // A full read (readCount entries of other nodes) stops before the rest of the log and
        // this batch's own entries: the reader reads on at once instead of waiting for answers.
        if (++others >= this.readCount) this.readBehind = true
        continue
      }
      own ??= appendedFields(appends, results)
      const mine = own.get(id)
      // An entry of this batch that no append claims: the reader reads it rather than a guess.
      if (mine === undefined) {
        this.readBehind = true
        return
      }
      this.take(id, ['n', fieldsOrN, ...mine])
    }
  }

  /**
   * Read coalescing: the memory broker delivers the publishes of one loop turn together, so each
   * connection gets them in one socket write; here a node's own publishes come back a round trip
   * after what the reader just read, and a fan-out would pay one write per connection for each.
   * When this node has publishes on their way to Redis, the entries just read wait for them (at
   * most `readCoalesceMs`), and go out with them: one more `XREAD`, which does not block, reads
   * what they appended. With two publishers broadcasting to 10,000 streams this halves the
   * writes. Only when the entries reach at least {@link COALESCE_MIN_REACH} connections here: a
   * one-to-one event saves no write by waiting, and would only be late. Bound: at most
   * 2 × `readCount` entries per delivery.
   */
  private async coalesce(entries: Entry[]): Promise<Entry[]> {
    // The check phase: publishes that came in this turn's poll phase have been queued by now.
    await new Promise((resolve) => setImmediate(resolve))
    const pending = this.batcher.answered()
    if (pending === null || this.reachOf(entries) < COALESCE_MIN_REACH) return entries
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      pending,
      new Promise((resolve) => (timer = setTimeout(resolve, this.readCoalesceMs))),
    ])
    clearTimeout(timer)
    // The answers read back what the batches appended, and delivered it (in log order, so what
    // was held and is older went first); what is left of `entries` goes out in the same turn.
    if (!this.readBehind) return entries
    const reader = this.reader
    if (this.closed || reader === null) return entries
    const after = entries[entries.length - 1]![0]
    const more = await withTimeout(
      reader.xread('COUNT', this.readCount, 'STREAMS', this.logKey, after),
      this.blockMs + 3_000,
      'XREAD watchdog fired',
    )
    return entries.concat(entriesOf(more))
  }

  /** At most how many local connections `entries` reach (many when the sink cannot say). */
  private reachOf(entries: readonly Entry[]): number {
    const sink = this.sink
    if (sink?.reach === undefined) return Number.MAX_SAFE_INTEGER
    let sum = 0
    for (const [, fields] of entries) {
      // Field names sit at even positions; a command entry has no `k` and reaches no connection.
      for (let i = 0; i + 1 < fields.length; i += 2)
        if (fields[i] === 'k') {
          sum += sink.reach(fields[i + 1]!.split('\n'))
          break
        }
      if (sum >= COALESCE_MIN_REACH) break
    }
    return sum
  }

  private dispatch(
    id: string,
    fields: readonly string[],
    publication: RedisPublication | null,
  ): void {
    const sink = this.sink
    if (sink === null) return
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

/**
 * How long a broker's read cursor outlives its last batch, in ms. Past it, the next batch reads
 * back from the node's position (it may read entries again; they are skipped): the key of a node
 * that died goes away on its own.
 */
const CURSOR_TTL_MS = 60_000

/**
 * Read coalescing waits only for entries that reach at least this many connections on this node:
 * below it, a socket write saved per connection is worth less than the round trip of delay.
 */
const COALESCE_MIN_REACH = 100

/** The fields of each appended entry of a batch, by the id Redis gave it. */
function appendedFields(
  appends: readonly Append[],
  results: readonly AppendResult[],
): Map<string, readonly string[]> {
  const byId = new Map<string, readonly string[]>()
  results.forEach(([id, , outcome], index) => {
    if (outcome === undefined) byId.set(id, appends[index]!.fields)
  })
  return byId
}

/** The entries of an `XREAD` reply on the one stream (none for `null`, its timeout). */
function entriesOf(reply: unknown): Entry[] {
  const streams = (reply ?? []) as [string, Entry[]][]
  return streams[0]?.[1] ?? []
}

/** ioredis' errors for a command that failed because the connection went away. */
function isConnectionLoss(error: Error): boolean {
  return (
    error.name === 'MaxRetriesPerRequestError' ||
    error.message === 'Connection is closed.' ||
    error.message.includes('enableOfflineQueue')
  )
}
