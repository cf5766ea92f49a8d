import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2'
import { JSON_TYPE, asChunk } from './http1.js'
import { drainOrClose, streamHeaders, type Transport } from './transport.js'

/** A node:http or node:http2 (compat API) request. */
export type NodeRequest = IncomingMessage | Http2ServerRequest
/** A node:http or node:http2 (compat API) response. Express' `res` and Fastify's `reply.raw` are ones. */
export type NodeResponse = ServerResponse | Http2ServerResponse

/**
 * Wraps a node:http (or http2 compat) response as a {@link Transport}. Works for Express'
 * `res` and Fastify's `reply.raw` (call `reply.hijack()` first so Fastify leaves the response alone).
 */
export function createNodeTransport(req: NodeRequest, res: NodeResponse): Transport {
  const http1 = 'socket' in req && req.socket !== null && !('stream' in req)
  let closeListener: (() => void) | null = null
  let closed = false
  const fireClose = (): void => {
    if (closed) return
    closed = true
    const listener = closeListener
    closeListener = null
    listener?.()
  }
  // 'close' fires when the response finished or the peer went away; a write error (EPIPE,
  // ECONNRESET) is a client leaving, which is normal for SSE and reported as a close, not an error.
  res.on('close', fireClose)
  res.on('error', fireClose)
  // On HTTP/1.1 the frames bypass ServerResponse.write (its per-write bookkeeping and chunk
  // framing cost more than the socket write itself): once the headers are out, each frame goes to
  // the socket as one ready-made chunk. `res.end()` still writes the last chunk, so keep-alive and
  // the response's own state stay right.
  let direct: Socket | null = null
  if (http1) {
    const socket = req.socket
    // An event stream is long-lived: no idle timeout, no Nagle delay on small frames.
    socket.setTimeout(0)
    socket.setNoDelay(true)
    socket.setKeepAlive(true)
  }
  return {
    open() {
      const response = res as ServerResponse & { chunkedEncoding?: boolean }
      response.writeHead(200, streamHeaders)
      // Push the headers out now, so that proxies and browsers see the stream open.
      response.flushHeaders()
      const socket = response.socket
      if (
        http1 &&
        response.chunkedEncoding === true &&
        socket !== null &&
        response.writableLength === 0
      ) {
        direct = socket
      }
    },
    reject(status, body, headers = {}) {
      const all: Record<string, string> = { ...headers }
      if (body !== undefined) {
        all['content-type'] = JSON_TYPE
        all['content-length'] = String(Buffer.byteLength(body))
      }
      ;(res as ServerResponse).writeHead(status, all)
      ;(res as ServerResponse).end(body)
    },
    write(chunk) {
      if (closed) return
      if (direct === null) {
        ;(res as ServerResponse).write(chunk)
        return
      }
      direct.write(asChunk(chunk))
    },
    get queuedBytes() {
      return direct === null ? res.writableLength : direct.writableLength
    },
    end() {
      if (!res.writableEnded) (res as ServerResponse).end()
    },
    destroy() {
      ;(res as ServerResponse).destroy()
      fireClose()
    },
    drained() {
      // With direct writes the bytes wait in the socket, and 'drain' comes from it.
      const emitter = direct ?? res
      if (closed || emitter.writableLength === 0) return Promise.resolve()
      return drainOrClose(emitter, res)
    },
    onClose(listener) {
      closeListener = listener
      if (closed) fireClose()
    },
    get remoteAddress() {
      return req.socket?.remoteAddress
    },
  }
}
