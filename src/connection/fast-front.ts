/**
 * The fast front: requests answered straight from the socket, without node:http's request cycle
 * (IncomingMessage, ServerResponse, parser, header objects, body stream, a dozen bound closures
 * per socket). For a publish that cycle costs more than the publish itself (measured: a bare
 * node:http server answers ~60k small POSTs/s on one core of this machine, a socket-level parser
 * ~120k/s); for an idle stream its objects are most of the memory the stream holds.
 *
 * It is a front, not a second HTTP server, and it knows no route: the server's `accepts` decides
 * which parsed requests it takes, and its `handle` (the same pipeline node:http's requests run)
 * answers them. At the first request that is anything else (not parsed here, not accepted) the
 * socket goes to node:http with every byte read, which answers it and every later request on that
 * connection. A request is handed over whole, at its first byte: nothing is parsed twice, nothing
 * is lost, and node:http's limits and timeouts apply to whatever reaches it.
 */
import type { Server } from 'node:http'
import type { Socket } from 'node:net'
import { JSON_TYPE, httpDate, statusLine } from './http1.js'
import { drainOrClose } from './transport.js'
import { parseFastRequest, type FastLimits, type FastRequest } from './fast-request.js'

/**
 * The answer to a {@link FastRequest}. The front adds `content-type` (JSON unless `type`),
 * `content-length`, `cache-control: no-store` (unless in `headers`), `date` and the keep-alive
 * headers.
 */
export interface FastResponse {
  readonly status: number
  /** Headers besides those the front adds (e.g. `retry-after`). */
  readonly headers?: Readonly<Record<string, string>>
  readonly body?: string
  readonly type?: string
}

/**
 * What became of a request: an answer to write (the connection then waits for the next request)
 * or `streaming` (the handler took the socket for an event stream).
 */
export type FastOutcome = FastResponse | 'streaming'

/** What the front needs from the server it sits in front of. */
export interface FastFrontOptions<T> extends FastLimits {
  /**
   * What the front answers this request with (the server's route), or `null`: node:http gets
   * it, and the socket. `followed`: more bytes came after it (a stream must not be followed by
   * anything).
   */
  readonly accepts: (request: FastRequest, followed: boolean) => T | null
  /**
   * Answers a request, at once or later (a promise); never throws or rejects (errors are
   * answers). `take()` detaches the socket from the front and gives it to the caller (for an
   * event stream; the outcome is then `streaming`).
   */
  readonly handle: (
    request: FastRequest,
    accepted: T,
    take: () => Socket,
  ) => FastOutcome | Promise<FastOutcome>
  /** Called when a request starts and when its answer was written (graceful shutdown counts them). */
  readonly onRequest: (delta: 1 | -1) => void
  /**
   * How long an answer may wait for a peer that does not read, in ms: past it, the connection is
   * closed (a client that pipelines and never reads holds no more than one answer's worth).
   */
  readonly sendTimeoutMs: number
  /** Reports a bug (the connection it happened on is closed). */
  readonly report: (error: Error) => void
}

/**
 * Bytes read ahead while a request is being answered: past this, reading stops until the requests
 * in hand are answered, so a client that pipelines a flood waits in its own kernel buffers, not in
 * ours. (A request larger than this is handed to node:http once its turn comes.)
 */
export const MAX_READ_AHEAD_BYTES = 65_536

// The headers after content-length, cached (the date changes once a second): a publish's answer
// is a few string concatenations.
let tailDate = ''
let tailKeepAlive = -1
let tailText = ''

/** The text of `response` on a keep-alive connection (`keepAliveMs` 0: no idle limit). */
export function responseText(response: FastResponse, keepAliveMs: number): string {
  const date = httpDate()
  if (date !== tailDate || keepAliveMs !== tailKeepAlive) {
    tailDate = date
    tailKeepAlive = keepAliveMs
    tailText = `\r\ndate: ${date}\r\nconnection: keep-alive\r\n`
    if (keepAliveMs > 0) tailText += `keep-alive: timeout=${Math.floor(keepAliveMs / 1000)}\r\n`
    tailText += '\r\n'
  }
  let head = statusLine(response.status)
  const extra = response.headers
  let cache = true
  if (extra !== undefined) {
    for (const name in extra) head += `${name}: ${extra[name]}\r\n`
    cache = extra['cache-control'] === undefined
  }
  const body = response.body ?? ''
  // The same headers, in the same order, as node:http's answers (a test compares the two).
  if (response.status !== 204 || body !== '')
    head += `content-type: ${response.type ?? JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\n`
  if (cache) head += 'cache-control: no-store\r\n'
  return `${head.slice(0, -2)}${tailText}${body}`
}

/**
 * Puts the fast front in front of `server`: new connections come to it first; what it does not
 * take goes to node:http's own connection handling, bytes included.
 */
export class FastFront<T> {
  // Connections between requests or answering one, those waiting for a request (since when), and
  // the streams. Idle connections are closed by one sweep a second, not a timer per socket (a
  // cleared socket timer stays referenced by the socket: ~200 bytes for every stream it became).
  private readonly sockets = new Set<Socket>()
  private readonly idle = new Map<Socket, number>()
  private readonly streams = new Set<Socket>()
  private readonly sweeper: NodeJS.Timeout
  private readonly nodeListener: (socket: Socket) => void

  constructor(
    private readonly server: Server,
    private readonly options: FastFrontOptions<T>,
  ) {
    const listeners = server.listeners('connection') as ((socket: Socket) => void)[]
    const node = listeners[0]
    if (listeners.length !== 1 || node === undefined)
      throw new Error('FastFront expects node:http to be the only connection listener')
    server.removeListener('connection', node)
    this.nodeListener = node
    server.on('connection', (socket: Socket) => this.accept(socket))
    this.sweeper = setInterval(() => this.sweep(), 1_000)
    this.sweeper.unref()
  }

  /** Stops the idle sweep (the server is closing). */
  close(): void {
    clearInterval(this.sweeper)
  }

  /**
   * Closes connections idle too long: `keepAliveTimeout` after an answer (node:http's rule), and
   * `headersTimeout` for a new connection that sent nothing (0: no limit, as in node:http).
   */
  private sweep(): void {
    const now = Date.now()
    const keepAlive = this.server.keepAliveTimeout
    const first = this.server.headersTimeout
    for (const [socket, since] of this.idle) {
      const limit = socket.bytesWritten === 0 ? first : keepAlive
      if (limit > 0 && now - since > limit) socket.destroy()
    }
  }

  private adopt(socket: Socket): Socket {
    this.streams.add(socket)
    socket.once('close', () => this.streams.delete(socket))
    return socket
  }

  /** Closes the connections that wait for their next request (shutdown). */
  closeIdle(): void {
    for (const socket of this.idle.keys()) socket.destroy()
  }

  /** Closes every connection the front holds or gave to a stream. */
  closeAll(): void {
    for (const socket of this.sockets) socket.destroy()
    for (const socket of this.streams) socket.destroy()
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    this.idle.set(socket, Date.now())
    // What was read and not yet answered: chunks, joined only when a request is parsed (a flood
    // of small chunks is never re-copied chunk by chunk).
    const chunks: Buffer[] = []
    let pending = 0
    let busy = false
    let peerEnded = false
    const forget = (): void => {
      this.sockets.delete(socket)
      this.idle.delete(socket)
    }
    const onError = (): void => {
      socket.destroy()
    }
    // node:http's server is half-open capable: end our side once the answers in hand are written.
    const onEnd = (): void => {
      peerEnded = true
      if (!busy) socket.end()
    }
    const detach = (): void => {
      socket.removeListener('data', onData)
      socket.removeListener('end', onEnd)
      socket.removeListener('close', forget)
      socket.removeListener('error', onError)
      forget()
    }
    const take = (): Socket => {
      detach()
      // (Through a method: a closure here would keep this function's whole scope per stream.)
      return this.adopt(socket)
    }
    const handOver = (rest: Buffer | null): void => {
      detach()
      this.nodeListener.call(this.server, socket)
      if (peerEnded) {
        // The peer half-closed after sending: the stream ended, so bytes cannot be put back
        // (unshift after 'end' throws). node:http's parser is fed them and the end directly.
        if (rest !== null) socket.emit('data', rest)
        socket.emit('end')
        return
      }
      // Paused, the bytes put back are the first that node:http's parser sees.
      socket.pause()
      if (rest !== null) socket.unshift(rest)
      socket.resume()
    }
    const takeBuffered = (): Buffer | null => {
      if (pending === 0) return null
      const buffer = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, pending)
      chunks.length = 0
      pending = 0
      return buffer
    }
    const pump = async (): Promise<void> => {
      busy = true
      this.idle.delete(socket)
      // One request at a time, answers in order.
      for (let current = takeBuffered(); current !== null; current = takeBuffered()) {
        const parsed = parseFastRequest(current, this.options)
        const accepted =
          parsed.kind === 'hand-over'
            ? null
            : this.options.accepts(parsed.request, parsed.length < current.length || pending > 0)
        if (parsed.kind === 'hand-over' || accepted === null) {
          busy = false
          const later = takeBuffered()
          handOver(later === null ? current : Buffer.concat([current, later]))
          return
        }
        // The rest of the buffer goes back in front of what arrives meanwhile.
        if (parsed.length < current.length) {
          chunks.unshift(current.subarray(parsed.length))
          pending += current.length - parsed.length
        }
        this.options.onRequest(1)
        let outcome: FastOutcome | Promise<FastOutcome>
        try {
          parsed.request.remoteAddress = socket.remoteAddress
          outcome = this.options.handle(parsed.request, accepted, take)
          // Most publishes are answered at once (memory broker): no await, no microtask.
          if (outcome instanceof Promise) outcome = await outcome
        } finally {
          this.options.onRequest(-1)
        }
        if (outcome === 'streaming') return
        if (socket.destroyed) return
        // A client that pipelines without reading its answers gets `sendTimeoutMs` to read them.
        if (!socket.write(responseText(outcome, this.server.keepAliveTimeout)))
          await drainOrClose(socket, socket, this.options.sendTimeoutMs)
        if (socket.destroyed) return
        if (socket.isPaused() && pending <= MAX_READ_AHEAD_BYTES) socket.resume()
      }
      busy = false
      if (socket.destroyed) return
      if (peerEnded) {
        socket.end()
        return
      }
      this.idle.set(socket, Date.now())
      if (socket.isPaused()) socket.resume()
    }
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk)
      pending += chunk.length
      if (!busy)
        pump().catch((error: unknown) => {
          socket.destroy()
          this.options.report(error instanceof Error ? error : new Error(String(error)))
        })
      else if (pending > MAX_READ_AHEAD_BYTES) socket.pause()
    }
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('close', forget)
    socket.on('error', onError)
  }
}
