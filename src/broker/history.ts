import type {
  Publication,
  ReplayItem,
  ResetReason,
  Resume,
  StartFrom,
  TopicState,
} from './broker.js'

/*
 * The in-memory history that the memory broker and the durable broker share: a bounded window of
 * publications in sequence order, and the finished topics. Each broker numbers publications and
 * parses ids its own way; this module only sees sequence numbers.
 */

/** A publication with its place in one broker's sequence (1, 2, 3...). */
export interface SeqPublication extends Publication {
  /** Position in the broker's log; consecutive. */
  readonly seq: number
  /** Bytes it takes where the broker keeps it (the durable broker's record size); 0 when unused. */
  readonly size?: number
}

/** The bounds of a {@link History}. */
export interface HistoryBounds {
  /** Most events kept. */
  readonly maxEvents: number
  /** Oldest event kept, in ms of age; `null`: no age bound. */
  readonly maxAgeMs: number | null
  /** Most bytes (the sum of {@link SeqPublication.size}) kept; `null`: no byte bound. */
  readonly maxBytes: number | null
  /** How long a finished topic is remembered, in ms. */
  readonly endedTtlMs: number
  /** Most finished topics remembered. */
  readonly maxEnded: number
}

/** A finished topic: its final publication and when it ended (ms since the epoch). */
export interface EndedTopic<P extends SeqPublication> {
  readonly publication: P
  readonly at: number
}

/** What a connection gets from the history: the events to replay and the topics already ended. */
export interface HistoryReplay {
  readonly replay: ReplayItem[]
  readonly ended: Set<string>
}

/**
 * A bounded window of publications, contiguous in `seq`, plus the finished topics. Trimming is
 * amortised O(1) per event: the dead prefix of the array is cut when it is as long as the rest.
 */
export class History<P extends SeqPublication> {
  /** The highest sequence number added (or set by {@link History.skipTo}); 0 before any. */
  lastSeq = 0
  /** The sum of the retained publications' sizes. */
  bytes = 0
  // `ring[head..]` holds events in seq order; compacted when the dead prefix grows.
  private ring: P[] = []
  private head = 0
  // Finished topics, oldest first (re-ending a topic moves it to the end).
  private readonly endedTopics = new Map<string, EndedTopic<P>>()

  constructor(private readonly bounds: HistoryBounds) {}

  /** Events retained now. */
  get size(): number {
    return this.ring.length - this.head
  }

  /** Finished topics remembered now. */
  get endedSize(): number {
    return this.endedTopics.size
  }

  /** The finished topics, oldest first. */
  ended(): IterableIterator<[string, EndedTopic<P>]> {
    return this.endedTopics.entries()
  }

  /**
   * Sets the sequence without adding events (a durable log whose retained window starts later):
   * every seq up to `seq` counts as published and dropped.
   */
  skipTo(seq: number): void {
    if (seq > this.lastSeq) this.lastSeq = seq
  }

  /** Appends `publication` (its seq follows {@link History.lastSeq}), trims, updates finished topics. */
  add(publication: P, now: number): void {
    this.lastSeq = publication.seq
    this.ring.push(publication)
    this.bytes += publication.size ?? 0
    this.trim(now)
    for (const key of publication.keys) {
      if (publication.close) {
        this.endedTopics.delete(key)
        this.endedTopics.set(key, { publication, at: now })
      } else if (this.endedTopics.size > 0) {
        // Publishing again to a finished topic reopens it.
        this.endedTopics.delete(key)
      }
    }
    if (this.endedTopics.size > 0) this.pruneEnded(now)
  }

  /** Remembers a finished topic as it was before a restart (oldest first). */
  restoreEnded(key: string, entry: EndedTopic<P>): void {
    this.endedTopics.delete(key)
    this.endedTopics.set(key, entry)
  }

  /** The seq of the oldest retained event; `lastSeq + 1` when none is retained. */
  firstRetainedSeq(): number {
    // With an empty ring every event up to `lastSeq` was dropped (or none was published).
    return this.ring[this.head]?.seq ?? this.lastSeq + 1
  }

  /** The publication with this seq, when retained. */
  at(seq: number): P | undefined {
    const first = this.firstRetainedSeq()
    return seq < first ? undefined : this.ring[this.head + seq - first]
  }

  /**
   * What `start` picks of the retained events matching `wanted` (a new subscription that asks for
   * history): all of them, the last N, or the latest per key; oldest first. One pass from the
   * newest back, at most the history.
   */
  startingEvents(wanted: ReadonlySet<string>, start: StartFrom): P[] {
    const picked: P[] = []
    const missing = start === 'newest' ? new Set(wanted) : null
    missing?.delete('@all') // `all` is a target, not a key one follows alone
    for (const publication of this.newestFirst()) {
      if (missing !== null) {
        let latest = false
        for (const key of publication.keys) if (missing.delete(key)) latest = true
        if (latest) picked.push(publication)
        if (missing.size === 0) break
      } else if (matches(publication, wanted)) {
        picked.push(publication)
        if (typeof start === 'number' && picked.length >= start) break
      }
    }
    return picked.reverse()
  }

  /** The latest retained event of topic key `key`, and whether the topic ended. */
  topicState(key: string, now: number): TopicState {
    this.trim(now)
    this.pruneEnded(now)
    const final = this.endedTopics.get(key)
    if (final !== undefined) return { lastEventId: final.publication.id, ended: true }
    for (const publication of this.newestFirst())
      if (publication.keys.includes(key)) return { lastEventId: publication.id, ended: false }
    return { lastEventId: null, ended: false }
  }

  /** The retained events, newest first. */
  *newestFirst(): Generator<P> {
    for (let i = this.ring.length - 1; i >= this.head; i--) yield this.ring[i]!
  }

  /** Drops events beyond the count, age and byte bounds. */
  trim(now: number): void {
    const { ring, bounds } = this
    let first = this.head + Math.max(0, ring.length - this.head - bounds.maxEvents)
    for (let i = this.head; i < first; i++) this.bytes -= ring[i]!.size ?? 0
    if (bounds.maxAgeMs !== null) {
      const oldest = now - bounds.maxAgeMs
      while (first < ring.length && ring[first]!.time < oldest)
        this.bytes -= ring[first++]!.size ?? 0
    }
    if (bounds.maxBytes !== null) {
      while (first < ring.length && this.bytes > bounds.maxBytes)
        this.bytes -= ring[first++]!.size ?? 0
    }
    if (first === this.head) return
    this.head = first
    // Compact once the dead prefix is as large as the live part: amortised O(1) per event.
    if (this.head >= ring.length - this.head) {
      this.ring = ring.slice(this.head)
      this.head = 0
    }
  }

  /** Forgets finished topics past their TTL, and the oldest beyond the count bound. */
  pruneEnded(now: number): void {
    for (const [key, entry] of this.endedTopics) {
      if (this.endedTopics.size <= this.bounds.maxEnded && entry.at >= now - this.bounds.endedTtlMs)
        break
      this.endedTopics.delete(key)
    }
  }

  /**
   * What a connection following `keys` missed, for a broker's `resume`: the history trimmed to
   * `now`, then the events after `lastEventId` (read into a seq of this history by the broker's
   * `position`, which says why when it cannot be resumed), or, for a new connection, what `start`
   * asks for. `current` is the snapshot the connection's cursor starts at.
   */
  resume(
    keys: readonly string[],
    lastEventId: string | undefined,
    start: StartFrom | undefined,
    position: (id: string, current: number) => number | ResetReason,
    now: number,
  ): HistoryReplay & { current: number; reset: Resume['reset'] } {
    this.trim(now)
    this.pruneEnded(now)
    const current = this.lastSeq
    let from = current
    let reset: ResetReason | null = null
    if (lastEventId !== undefined) {
      const seq = position(lastEventId, current)
      if (typeof seq === 'number') from = seq
      else reset = seq
    }
    const continued = lastEventId !== undefined && reset === null
    const { replay, ended } = this.replay(
      keys,
      from,
      continued,
      lastEventId === undefined ? start : undefined,
    )
    return { current, replay, ended, reset: reset === null ? null : { reason: reset, keys } }
  }

  /**
   * The events of `keys` after `from` (a seq within the window), and the finished topics.
   * `continued`: the connection resumes a position exactly (it saw the final events at or before
   * `from`: those topics are `ended`); otherwise (new, or reset) it gets the final event of each
   * finished topic first, which tells it the end.
   */
  replay(
    keys: readonly string[],
    from: number,
    continued: boolean,
    start?: StartFrom,
  ): HistoryReplay {
    const wanted = new Set(keys)
    const replay: ReplayItem[] = []
    if (start !== undefined) {
      // A new subscription that asks for history: what `start` picks, oldest first.
      for (const publication of this.startingEvents(wanted, start))
        replay.push({ publication, id: publication.id })
    } else {
      for (
        let i = this.head + Math.max(0, from - this.firstRetainedSeq() + 1);
        i < this.ring.length;
        i++
      ) {
        const publication = this.ring[i]!
        if (matches(publication, wanted)) replay.push({ publication, id: publication.id })
      }
    }
    const ended = new Set<string>()
    const finals: P[] = []
    for (const key of wanted) {
      const entry = this.endedTopics.get(key)
      if (entry === undefined) continue
      if (entry.publication.seq > from) continue // its final event is in the replay
      if (start !== undefined && replay.some((item) => item.publication === entry.publication))
        continue // picked by `start` already
      if (continued) ended.add(key)
      else if (!finals.includes(entry.publication)) finals.push(entry.publication)
    }
    finals.sort((a, b) => a.seq - b.seq)
    for (const publication of finals) replay.unshift({ publication, id: publication.id })
    return { replay, ended }
  }
}

function matches(publication: Publication, wanted: ReadonlySet<string>): boolean {
  for (const key of publication.keys) if (wanted.has(key)) return true
  return false
}
