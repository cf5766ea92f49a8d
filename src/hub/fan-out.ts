/**
 * The live path: each publication the broker delivers is written to the local connections that
 * follow any of its keys, once each. It runs once per event for every recipient, so it allocates
 * nothing per recipient and one frame per distinct id.
 */
import type { Publication } from '../broker/broker.js'
import { encodeEventText, type SseEvent } from '../wire/encode.js'
import { ALL_KEY, type HubCounters, type Member } from './member.js'
import type { Registry } from './registry.js'

/** Fans publications out to the members of a {@link Registry}. */
export class FanOut {
  /**
   * The latest publication {@link FanOut.deliver} fanned out, and to how many connections (one of
   * each, not a map: only a synchronous publish asks, right after its own delivery).
   */
  lastDelivered: Publication | null = null
  /** See {@link FanOut.lastDelivered}. */
  lastReached = 0
  private pass = 0
  // The last encoded frame and what it encodes: recipients of one publication share it. A cache
  // in fields rather than state of the pass, because a pass may run inside another (a `closed`
  // listener that publishes synchronously): a miss then only costs one more encoding.
  private framePublication: Publication | null = null
  private frameId: string | null = null
  private frame: Buffer | null = null

  constructor(
    private readonly registry: Registry,
    private readonly counters: HubCounters,
    /** Live events queued per member during its replay before it counts as a slow consumer. */
    private readonly maxPending: number,
  ) {}

  /** Fan-out of one publication to the local connections that follow any of its keys. */
  deliver(publication: Publication): void {
    this.counters.eventsIn++
    const pass = ++this.pass
    let reached = 0
    if (publication.keys.includes(ALL_KEY)) {
      for (const member of this.registry.members.values())
        reached += this.visit(member, publication, pass)
    } else {
      for (const key of publication.keys) {
        const set = this.registry.find(key)
        if (set !== undefined)
          for (const member of set) reached += this.visit(member, publication, pass)
      }
    }
    this.lastDelivered = publication
    this.lastReached = reached
  }

  /** At most how many local connections follow any of `keys`: the sum of their sets' sizes. */
  reachBound(keys: readonly string[]): number {
    if (keys.includes(ALL_KEY)) return this.registry.members.size
    let sum = 0
    for (const key of keys) sum += this.registry.find(key)?.size ?? 0
    return sum
  }

  /** How many local connections follow any of `keys` (a publish whose delivery is elsewhere). */
  countMatching(keys: readonly string[]): number {
    // `all`, or one key (a topic, a client id): exact without a copy. An asynchronous broker
    // (Redis) asks this for every publish: a broadcast to 10,000 streams must not copy 10,000
    // members into a Set.
    if (keys.length === 1 || keys.includes(ALL_KEY)) return this.reachBound(keys)
    const seen = new Set<Member>()
    for (const key of keys) {
      const set = this.registry.find(key)
      if (set !== undefined) for (const member of set) seen.add(member)
    }
    return seen.size
  }

  /** Sends `publication` to `member` once per pass; returns 1 when it reached it, else 0. */
  private visit(member: Member, publication: Publication, pass: number): number {
    // A member found under several keys of the publication gets it once.
    if (member.mark === pass) return 0
    member.mark = pass
    if (member.queue !== null) {
      // Still replaying: the publication waits behind the history (see replay.ts).
      if (member.queue.length >= this.maxPending) member.connection.destroy('slow-consumer')
      else member.queue.push(publication)
      return 1
    }
    const id = member.cursor!.advance(publication)
    if (id === null) return 1
    if (publication !== this.framePublication || id !== this.frameId) {
      this.framePublication = publication
      this.frameId = id
      this.frame = encodeFrame(publication, id)
    }
    writePublication(member, publication, this.frame!, this.counters)
    return 1
  }
}

/**
 * Writes `frame` (the encoding of `publication`) to `member` and keeps its finished topics: the
 * final event of its last open topic completes a live connection.
 */
export function writePublication(
  member: Member,
  publication: Publication,
  frame: Buffer,
  counters: HubCounters,
): void {
  if (member.connection.writeFrame(frame)) counters.eventsOut++
  if (!publication.close) return
  for (const key of publication.keys) member.openTopics.delete(key)
  // Once live, a connection whose topics all ended completes; during the replay openMember does it.
  if (
    member.queue === null &&
    member.connection.topics.length > 0 &&
    member.openTopics.size === 0
  ) {
    member.connection.end('completed')
  }
}

/** The event frame of `publication` under `id`. */
export function encodeFrame(publication: Publication, id: string): Buffer {
  const event: SseEvent = { id, data: publication.data }
  if (publication.event !== undefined) event.event = publication.event
  if (publication.retry !== undefined) event.retry = publication.retry
  return Buffer.from(encodeEventText(event))
}
