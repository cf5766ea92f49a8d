/**
 * An event stream compressed with gzip: a {@link Transport} that writes frames through one
 * `zlib` stream per connection and flushes after each write (one loop turn's batch), so every
 * event reaches the client at once instead of waiting in the compressor's window.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { constants, createGzip } from 'node:zlib'
import { drainOrClose, streamHeaders, type Transport } from '../connection/transport.js'
import { JSON_TYPE } from '../connection/http1.js'

/** True when the request accepts gzip (`Accept-Encoding: gzip`, not with `q=0`). */
export function acceptsGzip(req: Pick<IncomingMessage, 'headers'>): boolean {
  const header = req.headers['accept-encoding']
  if (typeof header !== 'string') return false
  return header
    .split(',')
    .map((part) => part.trim().toLowerCase())
    .some((part) => /^(gzip|\*)(\s*;\s*q=(?!0(\.0*)?$)[\d.]+)?$/.test(part))
}

/** Creates the gzip transport of `res`. */
export function createGzipTransport(req: IncomingMessage, res: ServerResponse): Transport {
  // A small window: memory per connection matters more than ratio for small frames.
  const gzip = createGzip({ level: 6, memLevel: 7, windowBits: 14 })
  let closed = false
  let onClose: (() => void) | undefined
  res.once('close', () => {
    closed = true
    gzip.destroy()
    onClose?.()
  })
  gzip.on('error', () => res.destroy())
  const flush = (): void => {
    if (!closed) gzip.flush(constants.Z_SYNC_FLUSH)
  }
  return {
    open() {
      // HTTP/2's compat socket is a proxy that refuses socket manipulation.
      if (!('stream' in req)) {
        req.socket.setTimeout(0)
        req.socket.setNoDelay(true)
      }
      res.writeHead(200, { ...streamHeaders, 'content-encoding': 'gzip', vary: 'accept-encoding' })
      gzip.pipe(res)
    },
    reject(status, body, headers = {}) {
      res.writeHead(status, {
        ...headers,
        ...(body === undefined ? {} : { 'content-type': JSON_TYPE }),
      })
      res.end(body)
    },
    write(chunk) {
      if (closed) return
      gzip.write(chunk)
      flush()
    },
    get queuedBytes() {
      return gzip.writableLength + res.writableLength
    },
    end() {
      if (!closed) gzip.end()
    },
    destroy() {
      res.destroy()
    },
    drained() {
      if (closed || (!gzip.writableNeedDrain && !res.writableNeedDrain)) return Promise.resolve()
      return drainOrClose(gzip, res)
    },
    onClose(listener) {
      onClose = listener
    },
    get remoteAddress() {
      return req.socket.remoteAddress
    },
  }
}
