/**
 * A {@link Transport} written straight to a TCP socket: the event stream of a plain HTTP/1.1
 * `GET /events` that the hub server's fast path took (src/server/fast-path.ts), without node:http's
 * IncomingMessage, ServerResponse, parser and their per-socket closures. An idle stream is what a
 * hub holds by the ten thousand, and those objects were most of its memory.
 *
 * The response is chunked HTTP/1.1 with `connection: close`: when the stream ends, the terminating
 * chunk is written and the connection closed (an EventSource opens a new one to reconnect anyway).
 */
import type { Socket } from 'node:net'
import { JSON_TYPE, asChunk, responseHead } from './http1.js'
import { drainOrClose, streamHeaders, type Transport } from './transport.js'

/**
 * Bytes a client may send on a stream's socket after its request (it should send none): past
 * this the socket is dropped, so a client cannot make the hub read forever.
 */
export const MAX_STREAM_INPUT_BYTES = 16_384

// `connection: close`: the socket closes when the stream ends, and a keep-alive client pool must
// not try to reuse it for its next request.
const streamHead = (): string =>
  `${responseHead(200, streamHeaders)}transfer-encoding: chunked\r\nconnection: close\r\n\r\n`
const lastChunk = '0\r\n\r\n'

class SocketTransport implements Transport {
  private closeListener: (() => void) | null = null
  private closed = false
  private input = 0

  constructor(private readonly socket: Socket) {
    // An event stream is long-lived: no idle timeout, no Nagle delay on small frames.
    socket.setTimeout(0)
    socket.setNoDelay(true)
    socket.setKeepAlive(true)
    // Reading goes on, so that the peer's FIN is seen; what it sends is dropped (bounded).
    socket.on('data', (chunk: Buffer) => {
      this.input += chunk.length
      if (this.input > MAX_STREAM_INPUT_BYTES) socket.destroy()
    })
    // A write error (EPIPE, ECONNRESET) is a client leaving: normal for SSE, reported as a close.
    socket.on('error', () => socket.destroy())
    // The server is half-open capable (node:http's default): a FIN from the peer means it left.
    socket.on('end', () => socket.destroy())
    socket.on('close', () => this.fireClose())
    if (socket.isPaused()) socket.resume()
  }

  get queuedBytes(): number {
    return this.socket.writableLength
  }

  get remoteAddress(): string | undefined {
    return this.socket.remoteAddress
  }

  open(): void {
    this.socket.write(streamHead())
  }

  reject(status: number, body: string | undefined, headers: Readonly<Record<string, string>> = {}) {
    const all: Record<string, string> = { ...headers }
    if (body !== undefined) {
      all['content-type'] = JSON_TYPE
      all['content-length'] = String(Buffer.byteLength(body))
    } else if (status !== 204) {
      all['content-length'] = '0'
    }
    all.connection = 'close'
    this.socket.end(`${responseHead(status, all)}\r\n${body ?? ''}`)
  }

  write(chunk: Uint8Array): void {
    if (!this.closed) this.socket.write(asChunk(chunk))
  }

  end(): void {
    if (!this.closed && !this.socket.writableEnded) this.socket.end(lastChunk)
  }

  destroy(): void {
    this.socket.destroy()
    this.fireClose()
  }

  drained(): Promise<void> {
    if (this.closed || this.socket.writableLength === 0) return Promise.resolve()
    return drainOrClose(this.socket, this.socket)
  }

  onClose(listener: () => void): void {
    this.closeListener = listener
    if (this.closed) this.fireClose()
  }

  private fireClose(): void {
    if (this.closed) return
    this.closed = true
    const listener = this.closeListener
    this.closeListener = null
    listener?.()
  }
}

/**
 * Wraps a socket whose HTTP/1.1 request was read (and nothing after it) as a {@link Transport}.
 * The transport owns the socket from here: it reads (and drops) what the peer sends, writes the
 * response, and closes the socket when the stream ends.
 */
export function createSocketTransport(socket: Socket): Transport {
  return new SocketTransport(socket)
}
