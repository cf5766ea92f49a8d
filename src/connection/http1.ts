/**
 * HTTP/1.1 bytes the hub writes straight to sockets: chunk framing of event frames (the node:http
 * direct path and the socket transport) and response heads (the socket transport and the server's
 * fast path).
 */
import { STATUS_CODES } from 'node:http'

// Each frame as one HTTP/1.1 chunk (size line, frame, CRLF) in one Buffer, so that each recipient
// costs one single-buffer socket write. Recipients of one event (or one turn's batch) are written
// one after the other with the same frame, so the last chunk made is kept for the next caller: a
// fan-out makes one chunk per event. (A WeakMap cache cost more than it saved: its entries are
// ephemerons the GC must trace, and one-to-one frames are used once.)
let lastFrame: Uint8Array | null = null
let lastChunk: Buffer | null = null

/** @internal `frame` as one HTTP/1.1 chunk. */
export function asChunk(frame: Uint8Array): Buffer {
  if (frame === lastFrame && lastChunk !== null) return lastChunk
  const head = `${frame.byteLength.toString(16)}\r\n`
  const chunk = Buffer.allocUnsafe(head.length + frame.byteLength + 2)
  chunk.write(head, 0, 'latin1')
  chunk.set(frame, head.length)
  chunk.write('\r\n', head.length + frame.byteLength, 'latin1')
  lastFrame = frame
  lastChunk = chunk
  return chunk
}

let dateAt = 0
let dateText = ''
/** @internal The Date header's value, computed at most once a second (as node:http does). */
export function httpDate(): string {
  const now = Date.now()
  if (now - dateAt >= 1000) {
    dateAt = now - (now % 1000)
    dateText = new Date(dateAt).toUTCString()
  }
  return dateText
}

/** @internal The content type of every JSON body the hub answers with. */
export const JSON_TYPE = 'application/json; charset=utf-8'

/** @internal A status line, CRLF included. */
export function statusLine(status: number): string {
  return `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n`
}

/** @internal A response head: status line, `headers`, and a Date header. */
export function responseHead(status: number, headers: Readonly<Record<string, string>>): string {
  let head = statusLine(status)
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
  return `${head}date: ${httpDate()}\r\n`
}
