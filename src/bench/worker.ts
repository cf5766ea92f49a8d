/**
 * One load-generator thread: raw `net` sockets, a minimal HTTP/1.1 writer and a byte-level SSE
 * scanner (it looks for `data: <seq> <sentUs>` and nothing else), so that one thread holds
 * thousands of streams and the server, not the generator, is the limit. Every loop here is
 * bounded in count and time; every socket goes to the loopback address it was given.
 */
import { connect, type Socket } from 'node:net'
import { parentPort, workerData } from 'node:worker_threads'
import { BUCKETS, bucketOf, nowUs } from './histogram.js'
import type {
  Command,
  OpenResult,
  PublishPlan,
  PublishResult,
  Reply,
  SlowStatus,
  Stats,
  WorkerConfig,
} from './protocol.js'

const config = workerData as WorkerConfig
if (!/^127\./.test(config.host)) throw new Error(`loopback only, got ${config.host}`)

const DATA = Buffer.from('data:')
const HEADER_END = Buffer.from('\r\n\r\n')
const MAX_CARRY = 1 << 20

let histogram = new Float64Array(BUCKETS)
let received = 0
let closedByServer = 0
let nextSource = config.index

interface Stream {
  readonly socket: Socket
  status: number
  carry: Buffer | null
  closed: boolean
}

const streams: Stream[] = []
let slow: { socket: Socket; closed: boolean; bytes: number } | null = null

function source(): string {
  const list = config.sourceAddresses
  return list[nextSource++ % list.length]!
}

function getRequest(path: string): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`
}

/** Scans complete lines of an event stream for `data:[ ][\"]<seq> <sentUs>`. */
function scan(buf: Buffer, end: number, now: number): void {
  let i = buf.indexOf(DATA, 0)
  while (i !== -1 && i < end) {
    let j = i + 5
    if (buf[j] === 0x20) j++ // better-sse writes `data:` without the space
    if (buf[j] === 0x22) j++ // and JSON-encodes a string payload
    while (j < end && buf[j] !== 0x20) j++ // the sequence number: not needed here
    j++
    let sent = 0
    for (let c = buf[j]; c !== undefined && c >= 0x30 && c <= 0x39; c = buf[++j])
      sent = sent * 10 + (c - 0x30)
    received++
    histogram[bucketOf(now - sent)]!++
    i = buf.indexOf(DATA, j)
  }
}

function onData(stream: Stream, chunk: Buffer): void {
  let buf = stream.carry === null ? chunk : Buffer.concat([stream.carry, chunk])
  stream.carry = null
  if (stream.status === 0) {
    const end = buf.indexOf(HEADER_END)
    if (end === -1) {
      stream.carry = buf.length < MAX_CARRY ? buf : null
      return
    }
    stream.status = Number(buf.toString('latin1', 9, 12)) || -1
    buf = buf.subarray(end + 4)
  }
  const last = buf.lastIndexOf(0x0a)
  if (last === -1) {
    if (buf.length > 0 && buf.length < MAX_CARRY) stream.carry = Buffer.from(buf)
    return
  }
  scan(buf, last, nowUs())
  if (last + 1 < buf.length) stream.carry = Buffer.from(buf.subarray(last + 1))
}

function openOne(path: string): Promise<Stream> {
  return new Promise((resolve) => {
    const socket = connect({ host: config.host, port: config.port, localAddress: source() })
    const stream: Stream = { socket, status: 0, carry: null, closed: false }
    socket.setNoDelay(true)
    let settled = false
    const settle = (): void => {
      if (settled) return
      settled = true
      resolve(stream)
    }
    socket.on('connect', () => socket.write(getRequest(path)))
    socket.on('data', (chunk: Buffer) => {
      onData(stream, chunk)
      if (stream.status !== 0) settle()
    })
    socket.on('error', () => undefined)
    socket.on('close', () => {
      if (!stream.closed && stream.status === 200) closedByServer++
      stream.closed = true
      settle()
    })
  })
}

async function open(paths: readonly string[], timeoutMs: number): Promise<OpenResult> {
  const deadline = Date.now() + timeoutMs
  const errors: string[] = []
  let opened = 0
  let failed = 0
  // A bounded number of handshakes in flight: the server's accept backlog is finite.
  const inFlight = 256
  let next = 0
  const lane = async (): Promise<void> => {
    while (next < paths.length && Date.now() < deadline) {
      const path = paths[next++]!
      const stream = await Promise.race([
        openOne(path),
        new Promise<null>((resolve) => setTimeout(resolve, Math.max(1, deadline - Date.now()))),
      ])
      if (stream !== null && stream.status === 200 && !stream.closed) {
        streams.push(stream)
        opened++
      } else {
        failed++
        if (errors.length < 5)
          errors.push(stream === null ? 'timeout' : `status ${stream.status} for ${path}`)
        stream?.socket.destroy()
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(inFlight, paths.length) }, lane))
  failed += paths.length - opened - failed
  return { opened, failed, errors }
}

async function openSlow(path: string, timeoutMs: number): Promise<OpenResult> {
  const stream = await Promise.race([
    openOne(path),
    new Promise<null>((resolve) => setTimeout(resolve, timeoutMs)),
  ])
  if (stream === null || stream.status !== 200) return { opened: 0, failed: 1, errors: ['slow'] }
  // Stop reading: the kernel buffers fill, then the server's queue for this connection grows.
  stream.socket.removeAllListeners('data')
  stream.socket.pause()
  const state = { socket: stream.socket, closed: false, bytes: 0 }
  stream.socket.on('close', () => (state.closed = true))
  stream.socket.on('end', () => (state.closed = true))
  slow = state
  return { opened: 1, failed: 0, errors: [] }
}

async function slowStatus(timeoutMs: number): Promise<SlowStatus> {
  const state = slow
  if (state === null) return { closedByServer: false, bytesAfterResume: 0 }
  state.socket.on('data', (chunk: Buffer) => (state.bytes += chunk.length))
  state.socket.resume()
  // Read what was queued; a server that dropped the connection ends it after its kernel buffers.
  const deadline = Date.now() + timeoutMs
  let quietSince = Date.now()
  let lastBytes = -1
  while (!state.closed && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50))
    if (state.bytes !== lastBytes) {
      lastBytes = state.bytes
      quietSince = Date.now()
    } else if (Date.now() - quietSince > 1000) break
  }
  const result = { closedByServer: state.closed, bytesAfterResume: state.bytes }
  state.socket.destroy()
  slow = null
  return result
}

function stats(): Stats {
  let openCount = 0
  for (const stream of streams) if (!stream.closed) openCount++
  return { received, open: openCount, closedByServer, histogram: Array.from(histogram) }
}

/** A keep-alive HTTP/1.1 publisher socket: one request in flight, the response read by length. */
interface Publisher {
  readonly socket: Socket
  busy: boolean
  buf: Buffer | null
  onResponse: ((ok: boolean, status: string) => void) | null
  /** The request in flight, settled by its response (or the socket's close). */
  inFlight: Promise<void> | null
}

function parseResponse(p: Publisher): void {
  const buf = p.buf
  if (buf === null) return
  const end = buf.indexOf(HEADER_END)
  if (end === -1) return
  const head = buf.toString('latin1', 0, end)
  const statusLine = head.slice(9, head.indexOf('\r\n') === -1 ? undefined : head.indexOf('\r\n'))
  const status = Number(head.slice(9, 12))
  const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
  let total: number
  if (length !== null) total = end + 4 + Number(length[1])
  else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
    const terminator = buf.indexOf('\r\n0\r\n\r\n', end)
    const bare = buf.indexOf('0\r\n\r\n', end + 4) === end + 4
    if (terminator === -1 && !bare) return
    total = bare ? end + 9 : terminator + 7
  } else total = end + 4
  if (buf.length < total) return
  p.buf = buf.length > total ? buf.subarray(total) : null
  const callback = p.onResponse
  p.onResponse = null
  p.busy = false
  callback?.(status >= 200 && status < 300, statusLine)
}

function openPublisher(): Promise<Publisher> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: config.host, port: config.port, localAddress: source() })
    const p: Publisher = { socket, busy: false, buf: null, onResponse: null, inFlight: null }
    socket.setNoDelay(true)
    socket.on('connect', () => resolve(p))
    socket.on('data', (chunk: Buffer) => {
      p.buf = p.buf === null ? chunk : Buffer.concat([p.buf, chunk])
      parseResponse(p)
    })
    socket.on('error', reject)
    socket.on('close', () => {
      const callback = p.onResponse
      p.onResponse = null
      callback?.(false, 'connection closed')
    })
  })
}

// The same on every publish: `Authorization` for a hub with a publish key (`--key`).
const authorization =
  config.publishKey === null ? '' : `Authorization: Bearer ${config.publishKey}\r\n`

function requestOf(plan: PublishPlan, seq: number, padding: string): string {
  const target = plan.targets[seq % plan.targets.length]!
  const payload = `${seq} ${nowUs()}${padding}`
  if (plan.dialect === 'nchan') {
    const channel = plan.kind === 'clientId' ? `c-${target[0]!}` : target.join(',')
    return `POST /pub/${channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`
  }
  const event = (t: readonly string[], data: string): string =>
    plan.kind === 'clientId'
      ? `{"clientId":${JSON.stringify(t[0]!)},"data":"${data}"}`
      : `{"topic":${JSON.stringify(t.length === 1 ? t[0]! : t)},"data":"${data}"}`
  const batch = plan.batch ?? 1
  if (batch > 1) {
    // Events seq*batch ... seq*batch+batch-1, cycling the targets as single publishes would.
    const events = Array.from({ length: batch }, (_, i) => {
      const n = seq * batch + i
      return event(plan.targets[n % plan.targets.length]!, `${n} ${nowUs()}${padding}`)
    })
    const body = `[${events.join(',')}]`
    return `POST /publish/batch HTTP/1.1\r\nHost: 127.0.0.1\r\n${authorization}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  }
  const body = event(target, payload)
  return `POST /publish HTTP/1.1\r\nHost: 127.0.0.1\r\n${authorization}Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
}

async function publish(plan: PublishPlan): Promise<PublishResult> {
  const publishers = await Promise.all(
    Array.from({ length: Math.max(1, plan.concurrency) }, openPublisher),
  )
  const padding = plan.paddingBytes > 0 ? ' ' + 'x'.repeat(plan.paddingBytes) : ''
  const rtt = new Float64Array(BUCKETS)
  let accepted = 0
  let failed = 0
  let late = 0
  let seq = 0
  let firstFailure: string | null = null
  const start = nowUs()
  const endUs = start + plan.seconds * 1e6
  const send = (p: Publisher): Promise<void> =>
    (p.inFlight = new Promise((resolve) => {
      const sent = nowUs()
      p.busy = true
      p.onResponse = (ok, status) => {
        // Counted in events: a batch request carries `batch` of them.
        if (ok) accepted += plan.batch ?? 1
        else {
          failed += plan.batch ?? 1
          firstFailure ??= status
        }
        rtt[bucketOf(nowUs() - sent)]!++
        resolve()
      }
      p.socket.write(requestOf(plan, seq++, padding))
    }))
  if (plan.mode === 'max') {
    await Promise.all(
      publishers.map(async (p) => {
        while (seq < plan.maxPublishes && nowUs() < endUs && !p.socket.destroyed) await send(p)
      }),
    )
  } else {
    const intervalUs = 1e6 / plan.ratePerSecond
    const pending: Promise<void>[] = []
    while (seq < plan.maxPublishes && nowUs() < endUs) {
      const due = start + seq * intervalUs
      const wait = (due - nowUs()) / 1000
      if (wait > 1) await new Promise((resolve) => setTimeout(resolve, wait - 0.5))
      else if (wait > 0) await new Promise((resolve) => setImmediate(resolve))
      if (nowUs() < due) continue
      const idle = publishers.find((p) => !p.busy && !p.socket.destroyed)
      if (idle === undefined) {
        late++
        // Wait for a request that is still in flight. (Racing the last few sent ones was a
        // livelock: when those had already settled, the loop spun on microtasks and never let the
        // event loop read the responses that would free a socket.)
        const inFlight = publishers.flatMap((p) =>
          p.busy && p.inFlight !== null && !p.socket.destroyed ? [p.inFlight] : [],
        )
        if (inFlight.length === 0) break
        await Promise.race(inFlight)
        continue
      }
      pending.push(send(idle))
      if (pending.length > 4096) void pending.splice(0, 2048)
    }
    await Promise.all(pending)
  }
  const elapsedS = (nowUs() - start) / 1e6
  for (const p of publishers) p.socket.destroy()
  return { accepted, failed, elapsedS, late, rttHistogram: Array.from(rtt), firstFailure }
}

async function run(command: Command): Promise<Reply> {
  switch (command.type) {
    case 'open':
      return open(command.paths, command.timeoutMs)
    case 'open-slow':
      return openSlow(command.path, command.timeoutMs)
    case 'slow-status':
      return slowStatus(command.timeoutMs)
    case 'reset':
      histogram = new Float64Array(BUCKETS)
      received = 0
      closedByServer = 0
      return null
    case 'stats':
      return stats()
    case 'close-all':
      for (const stream of streams) {
        stream.closed = true
        stream.socket.destroy()
      }
      streams.length = 0
      return null
    case 'publish':
      return publish(command.plan)
  }
}

parentPort!.on('message', (message: { id: number; command: Command }) => {
  run(message.command).then(
    (reply) => parentPort!.postMessage({ id: message.id, reply }),
    (error: unknown) => parentPort!.postMessage({ id: message.id, error: String(error) }),
  )
})
