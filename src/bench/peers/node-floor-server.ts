/**
 * The floor: the bench's protocol served by one Node process doing as little as the protocol
 * allows — raw `node:net` sockets, a request parser that trusts its input, `JSON.parse` of the
 * body, a Map of client ids and topics, one chunked `id:`/`data:` frame written per recipient, a
 * fixed JSON answer. No validation, no history, no backpressure, no limits, no timeouts: not a
 * hub, a reference. What ssehub costs above it is what its features and safety cost; what it
 * costs above nginx+nchan is what Node itself costs (one read, two writes and the JavaScript
 * around them per publish).
 *
 * Functions at module level, no closure per request: nothing here costs more than it must.
 */
import { createServer, type Server, type Socket } from 'node:net'
import { serve } from './harness.js'

interface Stream {
  readonly socket: Socket
  readonly topics: readonly string[]
}

const byClient = new Map<string, Stream>()
const byTopic = new Map<string, Set<Stream>>()
const buffers = new WeakMap<Socket, Buffer>()
let nextId = 0

const STREAM_HEAD =
  'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n' +
  'transfer-encoding: chunked\r\n\r\n'
const HEAD_END = Buffer.from('\r\n\r\n')
const MAX_HELD_BYTES = 1_048_576

function answer(socket: Socket, body: string): void {
  socket.write(
    `HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  )
}

function subscribe(socket: Socket, target: string): void {
  const query = new URLSearchParams(target.slice(target.indexOf('?') + 1))
  const stream: Stream = { socket, topics: query.getAll('topic') }
  const clientId = query.get('clientId')
  if (clientId !== null) byClient.set(clientId, stream)
  for (const topic of stream.topics) {
    let set = byTopic.get(topic)
    if (set === undefined) byTopic.set(topic, (set = new Set()))
    set.add(stream)
  }
  socket.on('close', () => forget(stream, clientId))
  socket.write(STREAM_HEAD)
}

function forget(stream: Stream, clientId: string | null): void {
  if (clientId !== null && byClient.get(clientId) === stream) byClient.delete(clientId)
  for (const topic of stream.topics) byTopic.get(topic)?.delete(stream)
}

function publish(socket: Socket, body: string): void {
  const input = JSON.parse(body) as { topic?: string; clientId?: string; data: unknown }
  const id = String(++nextId)
  const data = typeof input.data === 'string' ? input.data : JSON.stringify(input.data)
  const frame = `id: ${id}\ndata: ${data}\n\n`
  const chunk = `${Buffer.byteLength(frame).toString(16)}\r\n${frame}\r\n`
  let reached = 0
  if (input.clientId !== undefined) {
    const stream = byClient.get(input.clientId)
    if (stream !== undefined) {
      stream.socket.write(chunk)
      reached++
    }
  }
  if (input.topic !== undefined) {
    const set = byTopic.get(input.topic)
    if (set !== undefined) {
      for (const stream of set) stream.socket.write(chunk)
      reached += set.size
    }
  }
  answer(socket, `{"id":"${id}","connections":${reached}}`)
}

function onData(this: Socket, chunk: Buffer): void {
  const held = buffers.get(this)
  let buf = held === undefined ? chunk : Buffer.concat([held, chunk])
  for (;;) {
    const end = buf.indexOf(HEAD_END)
    if (end === -1) break
    const head = buf.toString('latin1', 0, end)
    const space = head.indexOf(' ')
    const target = head.slice(space + 1, head.indexOf(' ', space + 1))
    if (head.startsWith('GET')) {
      // The socket is a stream from here; whatever the client sends is dropped.
      buffers.delete(this)
      this.removeListener('data', onData)
      this.on('data', () => undefined)
      subscribe(this, target)
      return
    }
    const length = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0)
    if (buf.length < end + 4 + length) break
    try {
      publish(this, buf.toString('utf8', end + 4, end + 4 + length))
    } catch {
      // Not the bench's JSON: the floor does not answer what it does not understand.
      this.destroy()
      return
    }
    buf = buf.subarray(end + 4 + length)
  }
  // Bounded like the other peers' bodies (1 MiB): a head that never ends is dropped, not held.
  if (buf.length > MAX_HELD_BYTES) this.destroy()
  else if (buf.length > 0) buffers.set(this, buf)
  else buffers.delete(this)
}

const server: Server = createServer({ noDelay: true }, (socket) => {
  socket.on('data', onData)
  socket.on('error', () => socket.destroy())
})
serve(server)
