/**
 * The hub server's fast path: plain `POST /publish`, `POST /publish/batch` and `GET /events` answered straight from the
 * socket, without node:http's request cycle (IncomingMessage, ServerResponse, parser, header
 * objects, body stream, a dozen bound closures per socket). For a publish that cycle costs more
 * than the publish itself (measured: a bare node:http server answers ~60k small POSTs/s on one core
 * of this machine, a socket-level parser ~120k/s); for an idle stream its objects are most of the
 * memory the stream holds.
 *
 * It is a front, not a second HTTP server: it takes only what it can answer exactly (a complete,
 * plain HTTP/1.1 request for one of those two routes, already in the socket's buffer), and at the
 * first request that is anything else (another route, a partial request, chunked bodies, CORS, an
 * `Expect`, an odd header, HTTP/1.0...) it hands the socket, with every byte it read, to node:http,
 * which answers it and every later request on that connection. A request is handed over whole, at
 * its first byte: nothing is parsed twice, nothing is lost, and node:http's limits and timeouts
 * apply to whatever reaches it. Smuggling has no way in: a head with Transfer-Encoding, repeated
 * headers, obsolete folding, bare CR or LF, or a non-token header name is never taken here.
 */
import type { IncomingHttpHeaders, Server } from 'node:http'
import type { Socket } from 'node:net'
import { drainOrClose } from '../connection/transport.js'
import { JSON_TYPE, httpDate, statusLine } from '../connection/http1.js'

/** A request the fast path took: a complete `POST /publish` or `GET /events`. */
export interface FastRequest {
  readonly route: 'publish' | 'batch' | 'events'
  /** The query string, without `?` (empty when none). */
  readonly query: string
  /** Header names in lower case, each present once. */
  readonly headers: IncomingHttpHeaders & Readonly<Record<string, string>>
  readonly body: Buffer
  readonly remoteAddress: string | undefined
}

/**
 * The answer to a {@link FastRequest}: a JSON body. The front adds `content-type`,
 * `content-length`, `cache-control: no-store`, `date` and the keep-alive headers.
 */
export interface FastResponse {
  readonly status: number
  /** Headers besides those the front adds (e.g. `retry-after`). */
  readonly headers?: Readonly<Record<string, string>>
  readonly body: string
}

/**
 * What became of a request: an answer to write (the connection then waits for the next request),
 * `streaming` (the handler took the socket for an event stream), or `hand-over` (node:http answers).
 */
export type FastOutcome = FastResponse | 'streaming' | 'hand-over'

/** What the front needs from the server it sits in front of. */
export interface FastPathOptions {
  /** Heads larger than this go to node:http (which answers 431). */
  readonly maxHeaderBytes: number
  /** Bodies larger than this go to node:http (which answers 413). */
  readonly maxBodyBytes: number
  /**
   * Answers a request, at once or later (a promise); never throws or rejects (errors are
   * answers). `take()` detaches the socket from the front and gives it to the caller (for an
   * event stream; the outcome is then `streaming`).
   */
  readonly handle: (request: FastRequest, take: () => Socket) => FastOutcome | Promise<FastOutcome>
  /** Called when a request starts and when its answer was written (graceful shutdown counts them). */
  readonly onRequest: (delta: 1 | -1) => void
  /** Reports a bug (the connection it happened on is closed). */
  readonly report: (error: Error) => void
}

const PUBLISH = Buffer.from('POST /publish HTTP/1.1\r\n', 'latin1')
const BATCH = Buffer.from('POST /publish/batch HTTP/1.1\r\n', 'latin1')
const EVENTS = Buffer.from('GET /events', 'latin1')
// The rest of an events request line: an optional query of visible ASCII, then the version.
const EVENTS_LINE = /^(?:\?([\x21-\x7e]*))? HTTP\/1\.1$/
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')
// Byte classes: 3 for RFC 9110 token characters (header names), 2 for the other field-value bytes
// (visible ASCII, obs-text, SP, HTAB), 0 for the rest (CR, LF, NUL, other controls, DEL): a name
// or value with a byte of class 0 is handed to node:http.
const BYTE_CLASS = new Uint8Array(256)
for (let c = 0x20; c <= 0xff; c++) if (c !== 0x7f) BYTE_CLASS[c] = 2
BYTE_CLASS[0x09] = 2
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
  BYTE_CLASS[c.charCodeAt(0)] = 3
// Headers whose presence means node:http must decide (body framing, continuation, CORS, upgrade).
const HAND_OVER = ['transfer-encoding', 'expect', 'upgrade', 'origin', 'te', 'trailer']
// Header names as clients usually spell them -> the lower-case name (an interned constant, so that
// storing it as a key costs no string-table lookup); `null` for the names handed over.
const NAMES = new Map<string, string | null>()
for (const name of [
  'host',
  'content-type',
  'content-length',
  'connection',
  'authorization',
  'user-agent',
  'accept',
  'accept-encoding',
  'accept-language',
  'cache-control',
  'last-event-id',
  'pragma',
  'x-forwarded-for',
  ...HAND_OVER,
]) {
  const value = HAND_OVER.includes(name) ? null : name
  const capitalized = name.replace(
    /(^|-)([a-z])/g,
    (_, dash: string, c: string) => dash + c.toUpperCase(),
  )
  NAMES.set(name, value)
  NAMES.set(capitalized, value)
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09
}

type Parsed =
  | { readonly kind: 'request'; readonly request: FastRequest; readonly length: number }
  | { readonly kind: 'hand-over' }

function startsWith(buffer: Buffer, prefix: Buffer): boolean {
  return (
    buffer.length >= prefix.length &&
    buffer.compare(prefix, 0, prefix.length, 0, prefix.length) === 0
  )
}

/** Parses the request at the start of `buffer`, or says it is not one for the fast path. */
export function parseFastRequest(
  buffer: Buffer,
  remoteAddress: string | undefined,
  limits: Pick<FastPathOptions, 'maxHeaderBytes' | 'maxBodyBytes'>,
): Parsed {
  const handOver = { kind: 'hand-over' } as const
  let route: FastRequest['route']
  let query = ''
  let lineEnd: number
  if (startsWith(buffer, PUBLISH)) {
    route = 'publish'
    lineEnd = PUBLISH.length - 2
  } else if (startsWith(buffer, BATCH)) {
    route = 'batch'
    lineEnd = BATCH.length - 2
  } else if (startsWith(buffer, EVENTS)) {
    route = 'events'
    lineEnd = buffer.indexOf('\r\n', EVENTS.length, 'latin1')
    if (lineEnd === -1 || lineEnd > limits.maxHeaderBytes) return handOver
    const rest = EVENTS_LINE.exec(buffer.toString('latin1', EVENTS.length, lineEnd))
    if (rest === null) return handOver
    query = rest[1] ?? ''
  } else {
    return handOver
  }
  const end = buffer.indexOf(HEAD_END, lineEnd)
  // Incomplete, or larger than the limit: node:http waits for it (with its timeouts) or refuses it.
  if (end === -1 || end + 4 > limits.maxHeaderBytes) return handOver
  // A plain object (a null-prototype one is a slow dictionary); `__proto__` is handed over below.
  const headers: Record<string, string> = {}
  // One pass over the header lines, by character: names must be tokens, values field bytes; a
  // bare CR or LF fails both.
  const head = buffer.toString('latin1', lineEnd + 2, end + 2)
  let at = 0
  while (at < head.length) {
    let colon = at
    while (colon < head.length && BYTE_CLASS[head.charCodeAt(colon)] === 3) colon++
    if (colon === at || head.charCodeAt(colon) !== 0x3a) return handOver
    let eol = colon + 1
    while (eol < head.length && BYTE_CLASS[head.charCodeAt(eol)]! >= 2) eol++
    if (head.charCodeAt(eol) !== 0x0d || head.charCodeAt(eol + 1) !== 0x0a) return handOver
    // Optional whitespace around the value is not part of it.
    let from = colon + 1
    let to = eol
    while (from < to && isOws(head.charCodeAt(from))) from++
    while (to > from && isOws(head.charCodeAt(to - 1))) to--
    const name = head.slice(at, colon)
    let key = NAMES.get(name)
    if (key === undefined) {
      const lower = name.toLowerCase()
      key = NAMES.has(lower) ? NAMES.get(lower)! : lower
    }
    if (key === null || key === '__proto__' || Object.hasOwn(headers, key)) return handOver
    headers[key] = head.slice(from, to)
    at = eol + 2
  }
  if (headers.host === undefined) return handOver
  const connection = headers.connection?.toLowerCase()
  if (connection !== undefined && connection !== 'keep-alive') return handOver
  const declared = headers['content-length']
  if (route === 'events') {
    // A stream's request has no body, and nothing may follow it: the socket becomes the stream.
    if ((declared !== undefined && declared !== '0') || buffer.length !== end + 4) return handOver
    return {
      kind: 'request',
      request: { route, query, headers, body: Buffer.alloc(0), remoteAddress },
      length: end + 4,
    }
  }
  if (declared === undefined || !/^\d{1,10}$/.test(declared)) return handOver
  const size = Number(declared)
  if (size > limits.maxBodyBytes || buffer.length < end + 4 + size) return handOver
  // Header values are Latin-1 on the wire; node:http gives them as such too.
  return {
    kind: 'request',
    request: {
      route,
      query,
      headers,
      body: buffer.subarray(end + 4, end + 4 + size),
      remoteAddress,
    },
    length: end + 4 + size,
  }
}

// The headers after content-length, cached (the date changes once a second): a publish's answer
// is a few string concatenations. The same JSON headers as node:http's answers (server.ts
// jsonHeaders; a test compares the two).
let tailDate = ''
let tailKeepAlive = -1
let tailText = ''

/** The text of `response` on a keep-alive connection (`keepAliveMs` 0: no idle limit). */
export function responseText(response: FastResponse, keepAliveMs: number): string {
  const date = httpDate()
  if (date !== tailDate || keepAliveMs !== tailKeepAlive) {
    tailDate = date
    tailKeepAlive = keepAliveMs
    tailText = `\r\ncache-control: no-store\r\ndate: ${date}\r\nconnection: keep-alive\r\n`
    if (keepAliveMs > 0) tailText += `keep-alive: timeout=${Math.floor(keepAliveMs / 1000)}\r\n`
    tailText += '\r\n'
  }
  let head = statusLine(response.status)
  const extra = response.headers
  if (extra !== undefined) for (const name in extra) head += `${name}: ${extra[name]}\r\n`
  const length = Buffer.byteLength(response.body)
  return `${head}content-type: ${JSON_TYPE}\r\ncontent-length: ${length}${tailText}${response.body}`
}

/**
 * Puts the fast path in front of `server`: new connections come to it first; what it does not
 * take goes to node:http's own connection handling, bytes included.
 */
export class FastPathFront {
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
    private readonly options: FastPathOptions,
  ) {
    const listeners = server.listeners('connection') as ((socket: Socket) => void)[]
    const node = listeners[0]
    if (listeners.length !== 1 || node === undefined)
      throw new Error('FastPathFront expects node:http to be the only connection listener')
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
    let buffered: Buffer | null = null
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
    const handOver = (): void => {
      detach()
      // Paused, the bytes put back are the first that node:http's parser sees.
      socket.pause()
      if (buffered !== null) socket.unshift(buffered)
      buffered = null
      this.nodeListener.call(this.server, socket)
      socket.resume()
    }
    const take = (): Socket => {
      detach()
      // (Through a method: a closure here would keep this function's whole scope per stream.)
      return this.adopt(socket)
    }
    const pump = async (): Promise<void> => {
      busy = true
      this.idle.delete(socket)
      // One request at a time, answers in order.
      while (buffered !== null) {
        const current: Buffer = buffered
        const parsed = parseFastRequest(current, socket.remoteAddress, this.options)
        if (parsed.kind === 'hand-over') {
          busy = false
          handOver()
          return
        }
        // What arrives while the request is handled is appended to the rest.
        buffered = parsed.length === current.length ? null : current.subarray(parsed.length)
        this.options.onRequest(1)
        let outcome: FastOutcome | Promise<FastOutcome>
        try {
          outcome = this.options.handle(parsed.request, take)
          // Most publishes are answered at once (memory broker): no await, no microtask.
          if (outcome instanceof Promise) outcome = await outcome
        } finally {
          this.options.onRequest(-1)
        }
        if (outcome === 'hand-over') {
          const request = current.subarray(0, parsed.length)
          buffered = buffered === null ? request : Buffer.concat([request, buffered])
          busy = false
          handOver()
          return
        }
        if (outcome === 'streaming') return
        if (socket.destroyed) return
        // A client that pipelines without reading its answers waits until it reads them.
        if (!socket.write(responseText(outcome, this.server.keepAliveTimeout)))
          await drainOrClose(socket, socket)
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
      buffered = buffered === null ? chunk : Buffer.concat([buffered, chunk])
      if (!busy)
        pump().catch((error: unknown) => {
          socket.destroy()
          this.options.report(error instanceof Error ? error : new Error(String(error)))
        })
      // A client that pipelines a flood waits in its own kernel buffers, not in ours: past one
      // largest request, reading stops until the requests in hand are answered.
      else if (buffered.length > this.options.maxHeaderBytes + this.options.maxBodyBytes)
        socket.pause()
    }
    socket.on('data', onData)
    socket.on('end', onEnd)
    socket.on('close', forget)
    socket.on('error', onError)
  }
}
