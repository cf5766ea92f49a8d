/**
 * The hub's one timer: heartbeats on idle connections, the maximum connection age and token
 * expiry, all checked by one periodic sweep instead of a timer per connection.
 */
import type { Connection } from '../connection/connection.js'

/** What the sweep enforces. */
export interface SweepOptions {
  /** Heartbeat interval, in ms; `null` for none. */
  readonly heartbeatMs: number | null
  /** Maximum connection age, in ms; `null` for none. */
  readonly maxConnectionAgeMs: number | null
}

/**
 * The sweep period, in ms: often enough for each duty (half a heartbeat interval, a quarter of
 * the maximum age) and at least every second, since token expiry is checked by the same sweep.
 */
export function sweepPeriod(options: SweepOptions): number {
  const periods: number[] = []
  if (options.heartbeatMs !== null) periods.push(options.heartbeatMs / 2)
  if (options.maxConnectionAgeMs !== null) periods.push(options.maxConnectionAgeMs / 4)
  periods.push(1_000)
  return Math.max(5, Math.min(...periods))
}

/**
 * Starts the sweep of `connections` (a live view, in connect order). The timer is `unref()`'d: it
 * never keeps a process alive by itself. Stop it with `clearInterval`.
 */
export function startSweep(
  connections: ReadonlyMap<Connection, unknown>,
  options: SweepOptions,
): NodeJS.Timeout {
  const timer = setInterval(() => sweep(connections, options, Date.now()), sweepPeriod(options))
  timer.unref()
  return timer
}

/**
 * One pass at time `now`: ends connections past their age (`timeout`) or their token's expiry
 * (`expired`), and writes a heartbeat comment to open connections idle for half an interval.
 */
export function sweep(
  connections: ReadonlyMap<Connection, unknown>,
  options: SweepOptions,
  now: number,
): void {
  const { heartbeatMs, maxConnectionAgeMs } = options
  if (maxConnectionAgeMs !== null) {
    const oldest = now - maxConnectionAgeMs
    // Connections are in connect order: the expired ones are a prefix. (Ending one removes it
    // from the map; a Map's iterator copes with deletion.)
    for (const connection of connections.keys()) {
      if (connection.connectedAt > oldest) break
      connection.end('timeout')
    }
  }
  const idleSince = heartbeatMs === null ? -Infinity : now - heartbeatMs / 2
  for (const connection of connections.keys()) {
    if (connection.expiresAt !== undefined && connection.expiresAt <= now) connection.end('expired')
    else if (connection.state === 'open' && connection.lastWriteAt <= idleSince)
      connection.heartbeat()
  }
}
