/**
 * The hub server's lifecycle: listening (with the guard against an open hub on a public address)
 * and graceful shutdown — stop accepting, end the streams in waves (each told a jittered `retry:`,
 * so the reconnects of a rolling deploy spread out), let answers in flight finish, then close what
 * is left within `shutdownTimeoutMs`.
 */
import type { Server } from 'node:http'
import type { Http2SecureServer } from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import { ErrorCodes, SseError } from '../errors.js'
import { drainConnections, drainSpreadMs } from '../hub/drain.js'
import type { Hub } from '../hub/hub.js'
import type { Relays } from '../relay/relays.js'

const loopback = /^(127(?:\.\d{1,3}){3}|::1|localhost|::ffff:127(?:\.\d{1,3}){3})$/i

/** True when `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return loopback.test(host)
}

/** What the lifecycle drives. */
export interface LifecycleParts {
  readonly hub: Hub
  /** The hub was created by the server (it closes it), rather than passed in. */
  readonly ownsHub: boolean
  /** The server that listens (node:http, or the HTTP/2 TLS server). */
  readonly server: Server | Http2SecureServer
  /** True when the hub is open (no key, no JWT) and anonymous publishing was not allowed. */
  readonly refusesPublicHost: boolean
  readonly shutdownTimeoutMs: number
  /** The generations this node runs: stopped (their final events published) before the drain. */
  readonly relays: Relays
  /** Requests whose answer has not finished. */
  inFlight(): number
  /** Closes connections waiting for their next request. */
  closeIdle(): void
  /** Closes every connection. */
  closeAll(): void
  /** Stops the parts' timers (the web part, the fronts' sweeps). */
  stop(): void
}

/** The guard against an open hub on a public address. */
function checkHost(parts: LifecycleParts, host: string): void {
  if (parts.refusesPublicHost && !isLoopbackHost(host)) {
    throw new SseError(
      ErrorCodes.UNAUTHORIZED,
      `Refusing to listen on ${host} without a publish key: anyone could publish. Set --publish-key (or SSEHUB_PUBLISH_KEY), or pass --allow-anonymous-publish.`,
    )
  }
}

/**
 * Serves connections another process accepted on `host` (a primary that hands each connection
 * to one of its workers): the same guard as {@link listen}, then a function that takes a socket.
 */
export async function handoff(
  parts: LifecycleParts,
  host: string,
): Promise<(socket: Socket) => void> {
  checkHost(parts, host)
  await parts.hub.ready
  const { server } = parts
  // node:http starts tracking its connections (request timeouts, closeAllConnections) when it
  // listens; a server fed by another process never does, so it is told here.
  server.emit('listening')
  return (socket) => server.emit('connection', socket)
}

/** Starts listening on `host:port`. */
export async function listen(
  parts: LifecycleParts,
  port: number,
  host: string,
): Promise<AddressInfo> {
  checkHost(parts, host)
  await parts.hub.ready
  const { server } = parts
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      resolve()
    })
  })
  return server.address() as AddressInfo
}

/**
 * Graceful shutdown; resolves once the server closed or `shutdownTimeoutMs` passed. The streams
 * end in waves over the budget less a margin ({@link drainSpreadMs}); the margin is for the last
 * streams' final bytes and the answers in flight.
 */
export async function shutdown(parts: LifecycleParts): Promise<void> {
  const { hub, server } = parts
  const started = Date.now()
  parts.stop()
  const closed = new Promise<void>((resolve) => server.close(() => resolve()))
  // Viewers get a running generation's final event before their streams end (bounded: a
  // broker that does not answer cannot hold the shutdown past its budget's first quarter).
  const relaysStopped = parts.relays.close()
  if (parts.relays.runningCount > 0) {
    await Promise.race([
      relaysStopped,
      new Promise((resolve) => setTimeout(resolve, parts.shutdownTimeoutMs / 4).unref()),
    ])
  }
  const budgetMs = Math.max(0, parts.shutdownTimeoutMs - (Date.now() - started))
  const spreadMs = drainSpreadMs(budgetMs)
  // A hub passed in is the application's to close: only its streams on this server end here.
  const drained = parts.ownsHub
    ? hub.close({ spreadMs })
    : drainConnections([...hub.connections()], { spreadMs })
  // Once every response finished (ended streams flush, publishes answer), the sockets left are
  // idle keep-alives: close them all.
  const sweeper = setInterval(() => {
    if (parts.inFlight() === 0) parts.closeAll()
    else parts.closeIdle()
  }, 10)
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      parts.closeAll()
      resolve()
    }, budgetMs)
    timer.unref()
  })
  await Promise.race([Promise.all([closed, drained]), timeout])
  clearTimeout(timer)
  clearInterval(sweeper)
}
