/**
 * The publish fast path: `POST /publish` answered straight from the socket, without node:http's
 * request cycle (IncomingMessage, ServerResponse, header objects, body stream), which costs more
 * than the publish itself (measured: a bare node:http server answers ~60k small POSTs/s on one
 * core of this machine, a socket-level parser ~120k/s).
 *
 * It is a front, not a second HTTP server: it takes only what it can answer exactly (a complete,
 * plain HTTP/1.1 `POST /publish` with a Content-Length, already in the socket's buffer), and at the
 * first request that is anything else (another route, a partial request, chunked bodies, CORS, an
 * `Expect`, an odd header, HTTP/1.0...) it hands the socket, with every byte it read, to node:http,
 * which answers it and every later request on that connection. A request is handed over whole, at
 * its first byte: nothing is parsed twice, nothing is lost, and node:http's limits and timeouts
 * apply to whatever reaches it. Smuggling has no way in: a head with Transfer-Encoding, repeated
 * headers, obsolete folding, bare CR or LF, or a non-token header name is never taken here.
 */
import { STATUS_CODES, type IncomingHttpHeaders, type Server } from 'node:http'
import type { Socket } from 'node:net'
import { drainOrClose } from '../connection/node-http.js'

/** A request the fast path took: a complete `POST /publish`. */
export interface FastRequest {
  /** Header names in lower case, each present once. */
  readonly headers: IncomingHttpHeaders & Readonly<Record<string, string>>
  readonly body: Buffer
  readonly remoteAddress: string | undefined
}

/** The answer to a {@link FastRequest}: a JSON body. */
export interface FastResponse {
  readonly status: number
  readonly headers: Readonly<Record<string, string>>
  readonly body: string
}

/** What the front needs from the server it sits in front of. */
export interface FastPublishOptions {
  /** Heads larger than this go to node:http (which answers 431). */
  readonly maxHeaderBytes: number
  /** Bodies larger than this go to node:http (which answers 413). */
  readonly maxBodyBytes: number
  /** Answers a request; never rejects (errors are answers). */
  readonly handle: (request: FastRequest) => Promise<FastResponse>
  /** Called when a request starts and when its answer was written (graceful shutdown counts them). */
  readonly onRequest: (delta: 1 | -1) => void
  /** Reports a bug (the connection it happened on is closed). */
  readonly report: (error: Error) => void
}

const PREFIX = Buffer.from('POST /publish HTTP/1.1\r\n', 'latin1')
const HEAD_END = Buffer.from('\r\n\r\n', 'latin1')
// RFC 9110 token characters: anything else in a header name is handed to node:http to refuse.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/
// Field values: visible ASCII, obs-text, spaces and tabs (no CR, LF, NUL or other controls).
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/
// Headers whose presence means node:http must decide (body framing, continuation, CORS, upgrade).
const HAND_OVER = new Set(['transfer-encoding', 'expect', 'upgrade', 'origin', 'te', 'trailer'])

type Parsed =
  | { readonly kind: 'request'; readonly request: FastRequest; readonly length: number }
  | { readonly kind: 'hand-over' }

/** Parses the request at the start of `buffer`, or says it is not one for the fast path. */
export function parseFastRequest(
  buffer: Buffer,
  remoteAddress: string | undefined,
  limits: Pick<FastPublishOptions, 'maxHeaderBytes' | 'maxBodyBytes'>,
): Parsed {
  const handOver = { kind: 'hand-over' } as const
  if (
    buffer.length < PREFIX.length ||
    buffer.compare(PREFIX, 0, PREFIX.length, 0, PREFIX.length) !== 0
  )
    return handOver
  const end = buffer.indexOf(HEAD_END, PREFIX.length - 2)
  // Incomplete, or larger than the limit: node:http waits for it (with its timeouts) or refuses it.
  if (end === -1 || end + 4 > limits.maxHeaderBytes) return handOver
  // No prototype: a header named `__proto__` or `constructor` is a plain entry.
  const headers = Object.create(null) as Record<string, string>
  const lines = buffer.toString('latin1', PREFIX.length, end).split('\r\n')
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon <= 0) return handOver
    const name = line.slice(0, colon)
    const raw = line.slice(colon + 1)
    // A bare CR or LF (the split was on CRLF) or a control character fails these.
    if (!TOKEN.test(name) || !FIELD_VALUE.test(raw)) return handOver
    const value = raw.replace(/^[ \t]+|[ \t]+$/g, '')
    const key = name.toLowerCase()
    if (HAND_OVER.has(key) || key in headers) return handOver
    headers[key] = value
  }
  const declared = headers['content-length']
  if (headers.host === undefined || declared === undefined || !/^\d{1,10}$/.test(declared))
    return handOver
  const connection = headers.connection?.toLowerCase()
  if (connection !== undefined && connection !== 'keep-alive') return handOver
  const size = Number(declared)
  if (size > limits.maxBodyBytes || buffer.length < end + 4 + size) return handOver
  // Header values are Latin-1 on the wire; node:http gives them as such too.
  return {
    kind: 'request',
    request: { headers, body: buffer.subarray(end + 4, end + 4 + size), remoteAddress },
    length: end + 4 + size,
  }
}

let dateAt = 0
let dateText = ''
/** The Date header's value, computed at most once a second (as node:http does). */
function httpDate(): string {
  const now = Date.now()
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000)
    dateText = new Date(dateAt).toUTCString()
  }
  return dateText
}

/** The text of `response` on a keep-alive connection (`keepAliveMs` 0: no idle limit). */
export function responseText(response: FastResponse, keepAliveMs: number): string {
  let head = `HTTP/1.1 ${response.status} ${STATUS_CODES[response.status] ?? ''}\r\n`
  for (const [name, value] of Object.entries(response.headers)) head += `${name}: ${value}\r\n`
  head += `date: ${httpDate()}\r\nconnection: keep-alive\r\n`
  if (keepAliveMs > 0) head += `keep-alive: timeout=${Math.floor(keepAliveMs / 1000)}\r\n`
  return `${head}\r\n${response.body}`
}

/**
 * Puts the fast path in front of `server`: new connections come to it first; what it does not
 * take goes to node:http's own connection handling, bytes included.
 */
export class FastPublishFront {
  private readonly sockets = new Set<Socket>()
  private readonly idle = new Set<Socket>()
  private readonly nodeListener: (socket: Socket) => void
  /** Requests answered here, and connections handed to node:http. */
  readonly counts = { requests: 0, handedOver: 0 }

  constructor(
    private readonly server: Server,
    private readonly options: FastPublishOptions,
  ) {
    const listeners = server.listeners('connection') as ((socket: Socket) => void)[]
    const node = listeners[0]
    if (listeners.length !== 1 || node === undefined)
      throw new Error('FastPublishFront expects node:http to be the only connection listener')
    server.removeListener('connection', node)
    this.nodeListener = node
    server.on('connection', (socket: Socket) => this.accept(socket))
  }

  /** Closes the connections that wait for their next request (shutdown). */
  closeIdle(): void {
    for (const socket of this.idle) socket.destroy()
  }

  /** Closes every connection the front still holds. */
  closeAll(): void {
    for (const socket of this.sockets) socket.destroy()
  }

  private accept(socket: Socket): void {
    this.sockets.add(socket)
    this.idle.add(socket)
    let buffered: Buffer | null = null
    let busy = false
    const forget = (): void => {
      this.sockets.delete(socket)
      this.idle.delete(socket)
    }
    const onTimeout = (): void => {
      if (!busy) socket.destroy()
    }
    const onError = (): void => {
      socket.destroy()
    }
    const handOver = (): void => {
      socket.removeListener('data', onData)
      socket.removeListener('close', forget)
      socket.removeListener('error', onError)
      socket.removeListener('timeout', onTimeout)
      socket.setTimeout(0)
      forget()
      this.counts.handedOver++
      // Paused, the bytes put back are the first that node:http's parser sees.
      socket.pause()
      if (buffered !== null) socket.unshift(buffered)
      buffered = null
      this.nodeListener.call(this.server, socket)
      socket.resume()
    }
    const pump = async (): Promise<void> => {
      busy = true
      this.idle.delete(socket)
      // One request at a time, answers in order.
      while (buffered !== null) {
        const parsed = parseFastRequest(buffered, socket.remoteAddress, this.options)
        if (parsed.kind === 'hand-over') {
          busy = false
          handOver()
          return
        }
        buffered = parsed.length === buffered.length ? null : buffered.subarray(parsed.length)
        this.counts.requests++
        this.options.onRequest(1)
        try {
          const response = await this.options.handle(parsed.request)
          if (socket.destroyed) return
          // A client that pipelines without reading its answers waits until it reads them.
          if (!socket.write(responseText(response, this.server.keepAliveTimeout)))
            await drainOrClose(socket, socket)
        } finally {
          this.options.onRequest(-1)
        }
      }
      busy = false
      if (socket.destroyed) return
      this.idle.add(socket)
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
    socket.on('close', forget)
    socket.on('error', onError)
    socket.on('timeout', onTimeout)
    socket.setTimeout(this.server.keepAliveTimeout)
  }
}
