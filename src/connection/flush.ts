/**
 * Writes coalesced per connection within a tick. A frame sent to a connection waits in that
 * connection's batch until the event loop's check phase (`setImmediate`), where every connection
 * with a batch writes it in one socket write. Events published faster than one per loop turn (a
 * burst of publish requests, a token stream sent in a loop) thus cost one syscall per connection
 * per turn instead of one per event: the kernel's send path, not JavaScript, is most of a
 * fan-out's cost (a CPU profile of a 10k broadcast: about half the time inside `writev`).
 *
 * Bounds: the list holds each connection at most once (so at most the open connections), and a
 * connection writes its batch at once when it reaches {@link MAX_BATCH_BYTES}.
 */

/** A connection with a batch to write. */
export interface Flushable {
  /** Set while the connection is in the list, so that it is listed once. */
  flushScheduled: boolean
  /** Writes its batch (no-op when empty or closed). */
  flush(): void
}

/**
 * Bytes a connection batches before writing them without waiting for the check phase: the
 * batch is a few frames of one loop turn, not a buffer (the slow-consumer mark is for that).
 */
export const MAX_BATCH_BYTES = 64 * 1024

let scheduled: Flushable[] = []
let timer = false

// The last join of several frames: every subscriber of one topic gets the same frames in a turn,
// so one concatenated Buffer serves them all (compared by identity, so a stale entry is harmless).
let lastFirst: Buffer | null = null
let lastRest: readonly Buffer[] = []
let lastJoined: Buffer | null = null

/** Lists `connection` for the next check phase (once until it was flushed). */
export function scheduleFlush(connection: Flushable): void {
  if (connection.flushScheduled) return
  connection.flushScheduled = true
  scheduled.push(connection)
  if (!timer) {
    timer = true
    setImmediate(flushScheduled)
  }
}

function flushScheduled(): void {
  timer = false
  const list = scheduled
  scheduled = []
  for (const connection of list) {
    connection.flushScheduled = false
    connection.flush()
  }
  lastFirst = null
  lastRest = []
  lastJoined = null
}

/** `first` and `rest` as one Buffer, shared with the previous caller that had the same frames. */
export function joinFrames(first: Buffer, rest: readonly Buffer[]): Buffer {
  if (lastJoined !== null && lastFirst === first && lastRest.length === rest.length) {
    let same = true
    for (let i = 0; i < rest.length && same; i++) same = lastRest[i] === rest[i]
    if (same) return lastJoined
  }
  lastFirst = first
  // The caller drops its array after this call; keeping it is safe.
  lastRest = rest
  lastJoined = Buffer.concat([first, ...rest])
  return lastJoined
}
