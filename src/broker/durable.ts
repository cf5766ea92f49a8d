/**
 * The durable broker: the memory broker's history and delivery, with every event kept in an
 * append-only log of segment files (see segment-log.ts) under a data folder, so that a restart of
 * the hub — a deploy, a crash, `kill -9` — keeps the history and clients resume without a reset.
 *
 * Imported from `ssehub/durable`; the library's default broker stays the memory broker.
 */
import { closeSync, mkdirSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ErrorCodes, SseError } from '../errors.js'
import type {
  Broker,
  BrokerCommand,
  BrokerHealth,
  BrokerSink,
  Cursor,
  Publication,
  PublishRequest,
  ResetReason,
  Resume,
  StartFrom,
  TopicState,
} from './broker.js'
import {
  resolveDurableBrokerOptions,
  type DurableBrokerOptions,
  type FsyncPolicy,
  type ResolvedDurableBrokerOptions,
} from './durable-options.js'
import { History, type SeqPublication } from './history.js'
import { IdempotencyWindow, publishFingerprint } from './idempotency.js'
import {
  encodeRecord,
  fsyncDirSync,
  SegmentLog,
  writeFileAtomic,
  writeFileAtomicSync,
  type LogCut,
  type LogRecord,
} from './segment-log.js'

export {
  DURABLE_BROKER_DEFAULTS,
  FSYNC_POLICIES,
  resolveDurableBrokerOptions,
  type DurableBrokerOptions,
  type FsyncPolicy,
  type ResolvedDurableBrokerOptions,
} from './durable-options.js'

/**
 * A span of sequence numbers named by one epoch: ids `<epoch>-<seq>` are positions in it for
 * `from - 1 <= seq <= to` (`to`: null while it is the current epoch). A new epoch starts where
 * the log lost its tail, so the ids beyond the loss get a reset and the ids before it still resume.
 */
interface EpochSpan {
  readonly epoch: string
  readonly from: number
  readonly to: number | null
}

/** `meta.json`: what the store knows besides its events. */
interface Meta {
  readonly format: 1
  readonly epochs: readonly EpochSpan[]
  /** False while a hub has the store open: true after a clean close. */
  readonly clean: boolean
  /** The OS boot the store was last opened in (Linux), to tell a process crash from an OS crash. */
  readonly bootId: string | null
  /** The policy it was last opened with: after an unclean close under `never`, see {@link FsyncPolicy}. */
  readonly fsync: FsyncPolicy
}

/** One entry of `ended.json`: a finished topic whose final event's segment was deleted. */
interface EndedEntry {
  readonly key: string
  readonly at: number
  readonly record: LogRecord
}

interface Pending {
  readonly publication: SeqPublication
  readonly bytes: Buffer
  readonly resolve: (publication: Publication) => void
  readonly reject: (error: Error) => void
}

/** Data folders held by a broker of this process (the lock file's pid cannot tell them apart). */
const openDirs = new Set<string>()

const idPattern = /^([0-9a-z]{1,16})-(0|[1-9][0-9]{0,15})$/
const SWEEP_MS = 60_000
/** `fdatasync` calls in flight at most (the thread pool has 4 threads by default). */
const MAX_SYNCS = 2

function newEpoch(): string {
  return Math.random().toString(36).slice(2, 10).padEnd(8, '0')
}

function readBootId(): string | null {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()
  } catch {
    return null
  }
}

class DurableCursor implements Cursor {
  constructor(
    private readonly broker: DurableBroker,
    private seq: number,
  ) {}

  advance(publication: Publication): string | null {
    const seq = (publication as SeqPublication).seq
    if (seq <= this.seq) return null
    this.seq = seq
    return publication.id
  }

  get id(): string {
    return this.broker.positionId(this.seq)
  }
}

/**
 * A broker for one hub process whose history survives restarts. Publications are numbered at
 * once, written to the log in one `write(2)` per turn of the event loop, and — under the default
 * `fsync: 'always'` — acknowledged and delivered only after one `fdatasync(2)` of their batch
 * (group commit): what a client saw or a publisher was told is on disk. Replay is served from
 * memory, as the memory broker does; a restart reads the retained history back.
 */
export class DurableBroker implements Broker {
  private readonly options: ResolvedDurableBrokerOptions
  /** The absolute path of the data folder. */
  readonly dataDir: string
  private readonly history: History<SeqPublication>
  private readonly idempotency: IdempotencyWindow<Publication>
  private sink: BrokerSink | null = null
  private log: SegmentLog | null = null
  private epochs: EpochSpan[] = []
  private meta: Meta | null = null
  private state: 'new' | 'open' | 'failed' | 'closed' = 'new'
  private failure: SseError | null = null
  // The last seq handed out (numbering runs ahead of the log while a batch is pending).
  private assigned = 0
  private pending: Pending[] = []
  private scheduled = false
  // Written, no sync started yet; then the syncs in flight, in write order (acknowledged in it).
  private unsynced: Pending[] = []
  private syncs: { readonly batch: Pending[]; done: boolean }[] = []
  private idle: (() => void)[] = []
  private writeError: SseError | null = null
  private dropping = false
  private timer: NodeJS.Timeout | null = null
  private readonly lockPath: string
  private locked = false

  /** @throws {RangeError} or {@link TypeError} for a bad option, naming it. */
  constructor(options: DurableBrokerOptions) {
    this.options = resolveDurableBrokerOptions(options)
    this.dataDir = resolve(this.options.dataDir)
    this.lockPath = join(this.dataDir, 'lock')
    this.history = new History({
      maxEvents: this.options.historyMaxEvents,
      maxAgeMs: this.options.historyMaxAgeMs,
      maxBytes: this.options.historyMaxBytes,
      endedTtlMs: this.options.endedTopicTtlMs,
      maxEnded: this.options.maxEndedTopics,
    })
    this.idempotency = new IdempotencyWindow(
      this.options.idempotencyWindowMs,
      this.options.maxIdempotencyKeys,
    )
  }

  /** The epoch of new ids. */
  get epoch(): string {
    return this.epochs[this.epochs.length - 1]!.epoch
  }

  /**
   * Opens the store: takes its lock, reads the retained history back, cuts a bad tail (reported
   * to `sink.error`, with a new epoch so that the ids beyond it get a reset).
   * @throws {SseError} `ERR_SSE_BROKER_UNAVAILABLE` when the folder cannot be used.
   */
  start(sink: BrokerSink): Promise<void> {
    if (this.state !== 'new') return Promise.reject(new Error('The durable broker was started.'))
    try {
      const cut = this.open()
      this.sink = sink
      this.state = 'open'
      if (cut !== null) {
        const ended = this.epochs[this.epochs.length - 2]!
        // Reported once `start` has returned: the hub's owner attaches its error listener then.
        queueMicrotask(() =>
          sink.error(
            new SseError(
              ErrorCodes.BROKER_UNAVAILABLE,
              `The durable store in ${this.dataDir} had a bad tail (${cut.reason} in ${cut.file} at byte ${cut.offset}): ${cut.bytes} bytes were cut; ids of epoch ${ended.epoch} after ${ended.epoch}-${String(ended.to)} get a reset, and new events have epoch ${this.epoch}.`,
            ),
          ),
        )
      }
      const sweepMs = Math.min(SWEEP_MS, this.options.historyMaxAgeMs ?? SWEEP_MS)
      this.timer = setInterval(() => this.sweep(), sweepMs).unref()
      return Promise.resolve()
    } catch (error) {
      this.releaseLock()
      this.state = 'closed'
      return Promise.reject(
        new SseError(
          ErrorCodes.BROKER_UNAVAILABLE,
          `Cannot open the durable store in ${this.dataDir}: ${(error as Error).message}`,
          { cause: error },
        ),
      )
    }
  }

  publish(request: PublishRequest): Promise<Publication> {
    if (this.state !== 'open') return Promise.reject(this.unavailable())
    const now = Date.now()
    const key = request.idempotencyKey
    const fingerprint = key === undefined ? undefined : publishFingerprint(request)
    if (key !== undefined) {
      try {
        // A retry: the first publish's id (once it is durable, if it is still being written).
        const first = this.idempotency.check(key, fingerprint!, now)
        if (first !== null) return Promise.resolve(first)
      } catch (error) {
        return Promise.reject(error instanceof Error ? error : new Error(String(error)))
      }
    }
    const seq = ++this.assigned
    const record: LogRecord = {
      seq,
      time: now,
      keys: request.keys,
      event: request.event,
      data: request.data,
      retry: request.retry,
      close: request.close === true,
      ...(key === undefined ? {} : { idempotencyKey: key, fingerprint: fingerprint! }),
    }
    const bytes = encodeRecord(record)
    const publication: SeqPublication = {
      ...record,
      id: `${this.epoch}-${seq}`,
      size: bytes.length,
    }
    const written = new Promise<Publication>((resolve, reject) => {
      this.pending.push({ publication, bytes, resolve, reject })
      if (!this.scheduled) {
        this.scheduled = true
        // Everything published in this turn of the loop goes out as one batch.
        setImmediate(() => this.writeBatch())
      }
    })
    if (key !== undefined) this.idempotency.remember(key, fingerprint!, written, now)
    return written
  }

  /** The latest retained event of topic key `key`, and whether the topic ended. */
  topicState(key: string): Promise<TopicState> {
    return Promise.resolve(this.history.topicState(key, Date.now()))
  }

  resume(
    keys: readonly string[],
    lastEventId: string | undefined,
    start?: StartFrom,
  ): Promise<Resume> {
    const found = this.history.resume(
      keys,
      lastEventId,
      start,
      (id, current) => this.position(id, current),
      Date.now(),
    )
    return Promise.resolve({
      cursor: new DurableCursor(this, found.current),
      replay: found.replay,
      reset: found.reset,
      ended: found.ended,
    })
  }

  command(command: BrokerCommand): Promise<void> {
    this.sink?.command(command)
    return Promise.resolve()
  }

  health(): BrokerHealth {
    const error = this.failure ?? this.writeError
    return {
      ok: this.state === 'open' && error === null,
      broker: 'durable',
      details: {
        dataDir: this.dataDir,
        fsync: this.options.fsync,
        ...(this.epochs.length === 0
          ? {}
          : { epoch: this.epoch, lastId: this.positionId(this.history.lastSeq) }),
        historyEvents: this.history.size,
        historyBytes: this.history.bytes,
        diskBytes: this.log?.bytes ?? 0,
        segments: this.log?.segmentCount ?? 0,
        endedTopics: this.history.endedSize,
        ...(error === null ? {} : { error: error.message }),
      },
    }
  }

  /**
   * Stops the broker: publishes not yet written are refused, those written are synced, and the
   * store is marked cleanly closed.
   */
  async close(): Promise<void> {
    if (this.state === 'closed' || this.state === 'new') {
      this.state = 'closed'
      return
    }
    const wasOpen = this.state === 'open'
    this.state = 'closed'
    if (this.timer !== null) clearInterval(this.timer)
    this.timer = null
    for (const item of this.pending.splice(0)) item.reject(this.unavailable())
    while (this.syncs.length > 0) await new Promise<void>((resolve) => this.idle.push(resolve))
    await this.log?.close()
    this.log = null
    if (wasOpen) this.writeMeta(true)
    this.sink = null
    this.releaseLock()
  }

  /**
   * @internal The id of the event `seq`, which also names the position right after it (cursor
   * and reset ids): the epoch of the span that holds `seq`.
   */
  positionId(seq: number): string {
    for (let i = this.epochs.length - 1; i > 0; i--) {
      if (this.epochs[i]!.from <= seq) return `${this.epochs[i]!.epoch}-${seq}`
    }
    return `${this.epochs[0]!.epoch}-${seq}`
  }

  /** The seq `id` names in this log, or why it cannot be resumed exactly. */
  private position(id: string, current: number): number | ResetReason {
    const match = idPattern.exec(id)
    if (match === null) return 'unknown'
    const seq = Number(match[2])
    const span = this.epochs.find((candidate) => candidate.epoch === match[1])
    if (span === undefined) return seq > current ? 'unknown' : 'epoch'
    // Past the end of an epoch: those events were lost (a cut tail, an OS crash).
    if (span.to !== null && seq > span.to) return 'epoch'
    if (seq > current || seq < span.from - 1) return 'unknown'
    if (seq < this.history.firstRetainedSeq() - 1) return 'expired'
    return seq
  }

  private open(): LogCut | null {
    const { dataDir } = this
    mkdirSync(dataDir, { recursive: true })
    this.takeLock()
    const previous = this.readMeta()
    const restoredEnded = this.readEnded()
    const now = Date.now()
    // The epochs as they were; a new store gets one (its `from` is set once the log is read).
    this.epochs = previous?.epochs.slice() ?? [{ epoch: newEpoch(), from: 1, to: null }]
    for (const entry of restoredEnded) {
      this.history.restoreEnded(entry.key, {
        publication: { ...entry.record, id: this.positionId(entry.record.seq) },
        at: entry.at,
      })
    }
    // Each record is kept as it was read (no copy): a restart may read millions.
    const { log, scan } = SegmentLog.open(
      {
        dir: join(dataDir, 'log'),
        segmentBytes: this.options.segmentBytes,
        sync: this.options.fsync === 'always',
      },
      1,
      (record) => {
        record.id = this.positionId(record.seq)
        this.history.add(record, record.time)
        // Its key is known again: a retry after the restart still finds its first id.
        if (record.idempotencyKey !== undefined)
          this.idempotency.remember(record.idempotencyKey, record.fingerprint!, record, record.time)
      },
    )
    this.log = log
    const lastSeq = scan.nextSeq - 1
    // Why the ids beyond `lastSeq` may name events that are gone: start a new epoch there.
    const bootId = readBootId()
    const osMayHaveLost =
      previous !== null &&
      !previous.clean &&
      previous.fsync !== 'always' &&
      (bootId === null || previous.bootId !== bootId)
    const spans = this.epochs
    if (previous === null) {
      // A new store (or one whose meta.json was lost: its old ids then get a reset).
      spans[0] = { ...spans[0]!, from: log.firstSeq }
    } else if (scan.cut !== null || osMayHaveLost) {
      const last = spans.pop()!
      spans.push({ ...last, to: lastSeq }, { epoch: newEpoch(), from: lastSeq + 1, to: null })
    }
    this.history.skipTo(lastSeq)
    this.history.trim(now)
    this.history.pruneEnded(now)
    this.assigned = lastSeq
    this.meta = { format: 1, epochs: spans, clean: false, bootId, fsync: this.options.fsync }
    this.writeMeta(false)
    fsyncDirSync(dataDir)
    return scan.cut
  }

  private readMeta(): Meta | null {
    let text: string
    try {
      text = readFileSync(join(this.dataDir, 'meta.json'), 'utf8')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw error
    }
    const meta = JSON.parse(text) as Meta
    if (meta.format !== 1 || !Array.isArray(meta.epochs) || meta.epochs.length === 0)
      throw new Error(`meta.json is not a store of this version (format ${String(meta.format)})`)
    return meta
  }

  private writeMeta(clean: boolean): void {
    this.meta = { ...this.meta!, epochs: this.epochs, clean }
    writeFileAtomicSync(join(this.dataDir, 'meta.json'), JSON.stringify(this.meta) + '\n')
  }

  private readEnded(): EndedEntry[] {
    try {
      return JSON.parse(readFileSync(join(this.dataDir, 'ended.json'), 'utf8')) as EndedEntry[]
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw error
    }
  }

  private takeLock(): void {
    if (openDirs.has(this.dataDir))
      throw new Error('it is in use by another broker of this process (one hub per folder)')
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(this.lockPath, 'wx')
        writeSync(fd, `${process.pid}\n`)
        closeSync(fd)
        openDirs.add(this.dataDir)
        this.locked = true
        return
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error
      }
      const pid = Number(readFileSync(this.lockPath, 'utf8').trim())
      if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
        throw new Error(
          `it is in use by process ${pid} (one hub per folder; if that process is not a hub, delete ${this.lockPath})`,
        )
      }
      // Left by a process that died (kill -9), or by this one: take it over.
      unlinkSync(this.lockPath)
    }
    throw new Error(`cannot take the lock ${this.lockPath}`)
  }

  private releaseLock(): void {
    if (!this.locked) return
    this.locked = false
    openDirs.delete(this.dataDir)
    try {
      if (readFileSync(this.lockPath, 'utf8').trim() === String(process.pid))
        unlinkSync(this.lockPath)
    } catch {
      // Not ours, or already gone: nothing to release.
    }
  }

  /** Writes the batch of this turn of the loop; under `always`, starts its sync. */
  private writeBatch(): void {
    this.scheduled = false
    const batch = this.pending
    this.pending = []
    if (batch.length === 0 || this.state !== 'open') return
    const first = batch[0]!.publication.seq
    const last = batch[batch.length - 1]!.publication.seq
    try {
      this.log!.append(
        batch.length === 1 ? batch[0]!.bytes : Buffer.concat(batch.map((item) => item.bytes)),
        first,
        last,
      )
    } catch (error) {
      // Nothing of the batch is in the log, and no seq was handed out since: number again.
      this.assigned = first - 1
      this.writeError = this.storeError(error)
      for (const item of batch) item.reject(this.writeError)
      this.sink?.error(this.writeError)
      return
    }
    this.writeError = null
    if (this.options.fsync === 'never') {
      this.commit(batch)
      return
    }
    for (const item of batch) this.unsynced.push(item)
    this.startSyncs()
  }

  /**
   * Starts an `fdatasync` for what was written since the last one, while fewer than
   * {@link MAX_SYNCS} are in flight: a batch does not wait for the previous batch's sync to end
   * before its own starts (the disk's latency, not one sync after another, bounds the rate).
   */
  private startSyncs(): void {
    // (Also while closing: what was written is acknowledged before the files close.)
    if (this.unsynced.length === 0 || this.syncs.length >= MAX_SYNCS || this.state === 'failed')
      return
    const entry = { batch: this.unsynced, done: false }
    this.unsynced = []
    this.syncs.push(entry)
    this.log!.flush().then(
      () => {
        entry.done = true
        this.settleSyncs()
      },
      (error: unknown) => this.fail(error),
    )
  }

  /** Commits the synced batches at the head, in write order, and starts the next sync. */
  private settleSyncs(): void {
    while (this.syncs[0]?.done === true) this.commit(this.syncs.shift()!.batch)
    this.startSyncs()
    if (this.syncs.length === 0) for (const resolve of this.idle.splice(0)) resolve()
  }

  /** Delivers and acknowledges a durable batch, in order. */
  private commit(batch: readonly Pending[]): void {
    const now = Date.now()
    for (const item of batch) {
      this.history.add(item.publication, now)
      this.sink?.publication(item.publication)
      item.resolve(item.publication)
    }
    this.dropSegments()
  }

  /**
   * A failed `fdatasync`: what the OS kept of the written events is unknown (it may have dropped
   * the pages), so the store stops taking events until a restart reads back what is on disk.
   */
  private fail(error: unknown): void {
    if (this.state !== 'open') return
    this.state = 'failed'
    this.failure = new SseError(
      ErrorCodes.BROKER_UNAVAILABLE,
      `The durable store in ${this.dataDir} failed to sync its log (${describe(error)}); it takes no more events. Restart the hub: it reads back what is on disk.`,
      { cause: error },
    )
    const waiting = this.syncs.splice(0).flatMap((entry) => entry.batch)
    for (const item of [...waiting, ...this.unsynced.splice(0), ...this.pending.splice(0)])
      item.reject(this.failure)
    for (const resolve of this.idle.splice(0)) resolve()
    this.sink?.error(this.failure)
  }

  private unavailable(): SseError {
    if (this.failure !== null) return this.failure
    return new SseError(
      ErrorCodes.BROKER_UNAVAILABLE,
      this.state === 'new' ? 'The durable broker is not started.' : 'The durable broker is closed.',
    )
  }

  private storeError(error: unknown): SseError {
    const code = (error as NodeJS.ErrnoException).code
    const message =
      code === 'ENOSPC' || code === 'EDQUOT' || code === 'EFBIG'
        ? `The durable store in ${this.dataDir} is full (${describe(error)}): the event was not stored. Free space on that disk; publishing works again as soon as there is room.`
        : `The durable store in ${this.dataDir} could not write the event (${describe(error)}); retry later.`
    return new SseError(ErrorCodes.BROKER_UNAVAILABLE, message, { cause: error })
  }

  /** Trims by age while no event is published, and deletes the files of trimmed events. */
  private sweep(): void {
    const now = Date.now()
    this.history.trim(now)
    this.history.pruneEnded(now)
    this.dropSegments()
  }

  /**
   * Deletes the segment files whose events are all out of the history, in the background.
   * Finished topics whose final event is in them are written to `ended.json` first.
   */
  private dropSegments(): void {
    const log = this.log
    if (this.dropping || log === null || this.state !== 'open') return
    const first = this.history.firstRetainedSeq()
    const keep = log.firstKeptSeq(first)
    if (keep === log.firstSeq) return
    this.dropping = true
    const ended: EndedEntry[] = []
    for (const [key, { publication, at }] of this.history.ended()) {
      if (publication.seq >= keep) continue
      const { seq, time, keys, event, data, retry, close } = publication
      ended.push({ key, at, record: { seq, time, keys, event, data, retry, close } })
    }
    writeFileAtomic(join(this.dataDir, 'ended.json'), JSON.stringify(ended))
      .then(() => log.dropBefore(keep))
      .then(
        () => {
          this.dropping = false
          // Events trimmed while this ran may free more files: look again.
          this.dropSegments()
        },
        (error: unknown) => {
          this.dropping = false
          this.sink?.error(this.storeError(error))
        },
      )
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}

function describe(error: unknown): string {
  const { code, message } = error as NodeJS.ErrnoException
  return code === undefined ? message : `${code}: ${message.replace(/^[A-Z]+: /, '')}`
}
