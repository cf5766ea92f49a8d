/**
 * Closing streams without a reconnect storm. Ending every stream at once on shutdown makes every
 * client reconnect in the same second, onto the nodes that stay; instead the streams are ended
 * in waves across a spread, each told a jittered `retry:` first, so their reconnects spread out
 * (Mercure randomises write timeouts; AnyCable Pro drains slowly).
 */
import type { Connection } from '../connection/connection.js'
import { isOpen } from './member.js'

/** How a {@link drainConnections} spreads its closes. */
export interface DrainOptions {
  /**
   * The time over which the streams are ended, in ms; `0` ends them all now (with no `retry:`).
   * Each stream is told `retry: r` with `r` uniform in [0, spreadMs) before it ends.
   */
  readonly spreadMs: number
  /** Random numbers in [0, 1): the wave order and the jitter. @default Math.random */
  readonly random?: () => number
}

/** Streams per wave at least: a hub with few streams closes them at once (nothing to storm). */
export const MIN_WAVE_SIZE = 20
/** Time between two waves at least, in ms: timers finer than this buy nothing. */
export const MIN_WAVE_INTERVAL_MS = 50

/**
 * How long of a shutdown budget the waves take: the rest is the margin in which the last streams
 * flush their final bytes and answers in flight finish (a fifth of the budget, at most 1 s).
 */
export function drainSpreadMs(budgetMs: number): number {
  return Math.max(0, budgetMs - Math.min(1_000, Math.floor(budgetMs / 5)))
}

/**
 * Ends `connections` (reason `shutdown`) in waves across `spreadMs`, in random order; each open
 * stream first gets a `retry:` frame with a random delay within the spread, so the reconnects of
 * one wave spread out too. Resolves once the last wave ended. A stream that closed meanwhile is
 * skipped.
 */
export function drainConnections(
  connections: readonly Connection[],
  options: DrainOptions,
): Promise<void> {
  const { spreadMs } = options
  const random = options.random ?? Math.random
  if (spreadMs <= 0 || connections.length === 0) {
    for (const connection of connections) connection.end('shutdown')
    return Promise.resolve()
  }
  const order = shuffle([...connections], random)
  const waves = Math.max(
    1,
    Math.min(Math.ceil(order.length / MIN_WAVE_SIZE), Math.floor(spreadMs / MIN_WAVE_INTERVAL_MS)),
  )
  const endWave = (wave: number): void => {
    const from = Math.floor((wave * order.length) / waves)
    const to = Math.floor(((wave + 1) * order.length) / waves)
    for (let i = from; i < to; i++) {
      const connection = order[i]!
      if (isOpen(connection)) {
        const retryMs = Math.floor(random() * spreadMs)
        connection.writeFrame(Buffer.from(`retry: ${retryMs}\n\n`))
      }
      // A stream still opening gets a 503 with Retry-After instead (see Connection.end).
      connection.end('shutdown')
    }
  }
  endWave(0)
  if (waves === 1) return Promise.resolve()
  return new Promise((resolve) => {
    let wave = 1
    const start = Date.now()
    // One timer per wave, scheduled against the start: late timers do not push the rest back.
    // Not unref'd: the spread is bounded, and a shutdown must not exit before its last wave.
    const next = (): void => {
      setTimeout(
        () => {
          endWave(wave++)
          if (wave < waves) next()
          else resolve()
        },
        Math.max(0, start + (wave * spreadMs) / waves - Date.now()),
      )
    }
    next()
  })
}

/** Fisher-Yates, in place: waves must not follow connection age (or one client's streams). */
function shuffle<T>(items: T[], random: () => number): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    ;[items[i], items[j]] = [items[j]!, items[i]!]
  }
  return items
}
