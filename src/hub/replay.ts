/**
 * The subscribe path: register -> resume -> replay -> flush -> live. A new member is registered
 * first, so that live publications queue up on it; the broker snapshots its position in the same
 * tick; the history is replayed, then the queue is flushed, and the cursor drops the overlap of
 * the two. No gap, no duplicate. Also the hub's reset frames (history lost).
 */
import type { Broker, Resume, StartFrom } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'
import { ErrorCodes, SseError, isSseError } from '../errors.js'
import { encodeDataLines } from '../wire/encode.js'
import { encodeFrame, writePublication } from './fan-out.js'
import { isOpen, type HubCounters, type Member } from './member.js'
import type { Registry } from './registry.js'
import { RESET_EVENT } from './types.js'

/** Seconds a client waits before it retries when the history could not be read. */
const HISTORY_RETRY_AFTER_S = 2
/** Seconds a client refused at a connection limit waits (as the hub's own limits answer). */
const LIMIT_RETRY_AFTER_S = 5
/** The refusals of a connection limit, when a broker keeps the limits. */
const limitCodes = new Set<string>([ErrorCodes.LIMIT_REACHED, ErrorCodes.RATE_LIMITED])

/** What the subscribe path needs from its hub; built once per hub. */
export interface ReplayContext {
  /** Where the member is registered before the broker is asked. */
  readonly registry: Registry
  /** The broker that resolves what the member missed. */
  readonly broker: Broker
  /** The hub's counters (`eventsOut`). */
  readonly counters: HubCounters
  /** The `retry:` frame every stream opens with, if any. */
  readonly retryFrame: Buffer | null
  /** A connection's `maxQueuedBytes`: the replay waits for the socket at half of it. */
  readonly maxQueuedBytes: number
  /** The stream is live: emit `connected`. */
  connected(connection: Connection): void
  /** An operational error (the broker could not resume): report it. */
  reportError(error: Error): void
}

/**
 * Registers `member` and starts its stream: the replay of what it missed since `lastEventId` (or,
 * for a new subscription, what `from` asks for), then live events. Its connection answers by itself (a stream, `204` for finished topics, or a
 * refusal with `Retry-After` when the history is unavailable).
 */
export function startMember(
  context: ReplayContext,
  member: Member,
  lastEventId: string | undefined,
  from?: StartFrom,
): void {
  // Register first (live events queue up), then ask the broker in the same tick: the broker's
  // snapshot and the queue overlap, and the cursor drops the overlap. No gap, no duplicate.
  context.registry.add(member)
  context.broker.resume(member.keys, lastEventId, from).then(
    (resume) => openMember(context, member, resume),
    (error: unknown) => {
      // A broker that keeps limits over several processes (the workers' IPC broker) refuses a
      // connection over one: answered as the hub's own limits are, and no operational error.
      if (isSseError(error) && limitCodes.has(error.code)) {
        context.counters.rejections++
        member.connection.refuse(error, LIMIT_RETRY_AFTER_S)
        return
      }
      context.reportError(error instanceof Error ? error : new Error(String(error)))
      member.connection.refuse(
        new SseError(
          ErrorCodes.BROKER_UNAVAILABLE,
          'The history is unavailable right now; retry shortly.',
        ),
        HISTORY_RETRY_AFTER_S,
      )
    },
  )
}

/** Opens the stream of a registered member: replay, then the queued live events, then live. */
async function openMember(context: ReplayContext, member: Member, resume: Resume): Promise<void> {
  const { connection } = member
  if (connection.state === 'closed') return
  member.cursor = resume.cursor
  for (const key of resume.ended) member.openTopics.delete(key)
  const finishedBefore = connection.topics.length > 0 && member.openTopics.size === 0
  if (finishedBefore && resume.replay.length === 0) {
    // Every topic ended and the client saw each final event: 204 stops EventSource for good.
    connection.finished()
    return
  }
  const prelude: Buffer[] = []
  if (context.retryFrame !== null) prelude.push(context.retryFrame)
  // The reset's id is the snapshot: a reconnect from it gets exactly the live events after it.
  if (resume.reset !== null) prelude.push(resetFrame(member, resume.reset.reason, resume.cursor.id))
  connection.open(prelude)
  // Replay with backpressure: a long history is written as the client reads it, not buffered.
  const half = context.maxQueuedBytes / 2
  for (const item of resume.replay) {
    if (!isOpen(connection)) return
    writePublication(
      member,
      item.publication,
      encodeFrame(item.publication, item.id),
      context.counters,
    )
    if (connection.queuedBytes > half) await connection.drained()
  }
  // Live events that arrived meanwhile; more may arrive while we wait for the socket. A reset that
  // arrived meanwhile goes between the events queued before it and those after it.
  // (An index, not shift(): the queue may hold up to maxPendingEvents entries.)
  for (let i = 0; member.queue !== null && i < member.queue.length && isOpen(connection);) {
    if (member.resetPending !== null && member.resetPending.at <= i) writePendingReset(member)
    const publication = member.queue[i++]!
    const id = member.cursor.advance(publication)
    if (id !== null)
      writePublication(member, publication, encodeFrame(publication, id), context.counters)
    if (connection.queuedBytes > half) await connection.drained()
  }
  if (!isOpen(connection)) return
  if (member.resetPending !== null) writePendingReset(member)
  member.queue = null
  // The id-only frame: sets the client's last event id without dispatching an event, so a client
  // that drops before its first event still resumes exactly.
  connection.writeFrame(Buffer.from(`id: ${member.cursor.id}\n\n`))
  connection.live()
  if (!isOpen(connection)) return
  member.announced = true
  context.connected(connection)
  if (connection.topics.length > 0 && member.openTopics.size === 0) connection.end('completed')
}

/**
 * Tells every member that continuity was lost (the broker restarted without its data): a reset
 * event now, or, for a member still replaying, right before its queued live events.
 */
export function resetAll(members: Iterable<Member>, reason: string, id: string): void {
  for (const member of members) {
    // A second reset during one replay supersedes the first: the events between them go first.
    if (member.queue !== null) member.resetPending = { reason, id, at: member.queue.length }
    else member.connection.writeFrame(resetFrame(member, reason, id))
  }
}

function writePendingReset(member: Member): void {
  const { reason, id } = member.resetPending!
  member.resetPending = null
  member.connection.writeFrame(resetFrame(member, reason, id))
}

/**
 * The reset event of `member`: what it followed, so the client knows what to reload. Its `id` is
 * the position from which a reconnect resumes exactly (every dispatched event carries an id), so a
 * client that drops right after it does not get a second reset.
 */
function resetFrame(member: Member, reason: string, id: string): Buffer {
  const { connection } = member
  const body = JSON.stringify({
    reason,
    topics: connection.topics,
    ...(connection.clientId === undefined ? {} : { clientId: connection.clientId }),
  })
  return Buffer.from(`event: ${RESET_EVENT}\nid: ${id}\n${encodeDataLines(body)}\n`)
}
