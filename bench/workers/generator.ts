/**
 * One load-generator process of bench/workers/capacity.ts: opens `count` event streams to the hub
 * from source address `source` (a process may hold at most ~20,000 open files here, so the load
 * is spread over several), counts the events each receives, and answers the driver over IPC.
 *
 * Messages in: `{ op: 'open', port, count, source, path }`, `{ op: 'counts' }`, `{ op: 'exit' }`.
 * Out: `{ op: 'opened', ok, failed }`, `{ op: 'counts', min, max, total, closed }`.
 */
import { connect, type Socket } from 'node:net'

interface Stream {
  socket: Socket
  events: number
  closed: boolean
  tail: string
}

const streams: Stream[] = []
let failed = 0
// What marks one event in the stream: each benchmark event's data is `x`.
const MARK = 'data: x\n'

function count(stream: Stream, chunk: string): void {
  const text = stream.tail + chunk
  let at = text.indexOf(MARK)
  let last = -1
  while (at !== -1) {
    stream.events++
    last = at
    at = text.indexOf(MARK, at + MARK.length)
  }
  // Keep what could be the start of a mark split across chunks.
  const keepFrom = Math.max(last === -1 ? 0 : last + MARK.length, text.length - MARK.length + 1)
  stream.tail = text.slice(keepFrom)
}

function openOne(port: number, source: string, path: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress: source })
    const stream: Stream = { socket, events: 0, closed: false, tail: '' }
    let answered = false
    socket.setEncoding('latin1')
    socket.once('error', () => {
      if (!answered) {
        answered = true
        failed++
        resolve()
      }
    })
    socket.on('close', () => {
      stream.closed = true
      // Closed before any answer (no error): a failure too.
      if (!answered) {
        answered = true
        failed++
        resolve()
      }
    })
    socket.write(`GET ${path} HTTP/1.1\r\nHost: bench\r\n\r\n`)
    socket.on('data', (chunk: string) => {
      if (!answered) {
        answered = true
        if (chunk.startsWith('HTTP/1.1 200')) streams.push(stream)
        else {
          failed++
          socket.destroy()
        }
        resolve()
      }
      count(stream, chunk)
    })
  })
}

process.on(
  'message',
  (message: { op: string; port: number; count: number; source: string; path: string }) => {
    if (message.op === 'open') {
      void (async () => {
        for (let opened = 0; opened < message.count; opened += 250) {
          const wave = Math.min(250, message.count - opened)
          await Promise.all(
            Array.from({ length: wave }, () => openOne(message.port, message.source, message.path)),
          )
        }
        process.send!({ op: 'opened', ok: streams.length, failed })
      })()
    } else if (message.op === 'counts') {
      let min = Infinity
      let max = 0
      let total = 0
      let closed = 0
      for (const stream of streams) {
        min = Math.min(min, stream.events)
        max = Math.max(max, stream.events)
        total += stream.events
        if (stream.closed) closed++
      }
      process.send!({ op: 'counts', min: streams.length === 0 ? 0 : min, max, total, closed })
    } else if (message.op === 'exit') {
      for (const stream of streams) stream.socket.destroy()
      process.exit(0)
    }
  },
)
