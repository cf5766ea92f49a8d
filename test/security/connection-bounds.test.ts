import { connect, type Socket } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { TEST_FRONT, hubFixture } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'

// These run once per front (vitest.config.ts): both must bound what one connection holds and cut
// a peer that stalls, identically.
const fixture = hubFixture()
const sockets: Socket[] = []
afterEach(() => {
  for (const socket of sockets.splice(0)) socket.destroy()
})

function open(url: string): Promise<Socket> {
  const { port } = new URL(url)
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), '127.0.0.1', () => resolve(socket))
    socket.once('error', reject)
    sockets.push(socket)
  })
}

const publish = (n: number): string => {
  const body = `{"topic":"t","data":${n}}`
  return `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`
}

describe(`connection bounds (${TEST_FRONT} front)`, () => {
  it('closes a peer that pipelines publishes and never reads its answers', async () => {
    const hub = await fixture.start({ sendTimeoutMs: 1_000, publishRatePerSecond: null })
    const socket = await open(hub.url)
    // The peer never reads: answers pile up in the kernel buffers, then the server's.
    socket.pause()
    let closed = false
    socket.once('close', () => (closed = true))
    socket.on('error', () => undefined)
    const flood = Array.from({ length: 2_000 }, (_, i) => publish(i)).join('')
    // ~250 MB offered in all; the server must stop reading and cut the connection long before.
    const deadline = Date.now() + 15_000
    while (!closed && Date.now() < deadline) {
      if (!socket.write(flood)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            clearInterval(check)
            resolve()
          }
          socket.once('drain', done)
          const check = setInterval(() => closed && done(), 50)
        })
      }
      if (socket.writableLength > 64 * 1024 * 1024) break
    }
    await waitFor(() => closed, 'the server to close the stalled connection', 15_000)
    const published = hub.server.hub.stats().eventsPublished
    // Bounded work: the server stopped reading when its answers stalled, then cut the peer; the
    // publishes it took are fewer than the kernel accepted from the peer (~18k of ~44k here).
    const offered = Math.floor(socket.bytesWritten / publish(10_000).length)
    expect(published).toBeGreaterThan(0)
    expect(published).toBeLessThan(offered)
    // And the hub still serves others.
    expect((await fetch(`${hub.url}/healthz`)).status).toBe(200)
  })

  it('cuts a head sent one byte at a time at headersTimeoutMs, with 408', async () => {
    const hub = await fixture.start({ headersTimeoutMs: 1_000 })
    const socket = await open(hub.url)
    let answer = ''
    let closed = false
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => (answer += chunk))
    socket.once('close', () => (closed = true))
    socket.on('error', () => undefined)
    const head = 'POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n'
    const started = Date.now()
    let sent = 0
    // One byte every 100 ms, never the blank line that would end the head.
    const trickle = setInterval(() => {
      if (!closed) socket.write(head[sent++ % head.length]!)
    }, 100)
    try {
      await waitFor(() => closed, 'the slow head to be cut', 6_000)
    } finally {
      clearInterval(trickle)
    }
    // node:http checks its timers once a second: cut between 1 and ~2.5 s.
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/)
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000)
    expect(answer).toContain('"code":"ERR_SSE_REQUEST_TIMEOUT"')
  })

  it('refuses more pipelined requests than maxPipelinedRequests waiting at once', async () => {
    // A stream holds its answer open: requests pipelined behind it wait, and past the bound the
    // connection is closed instead of queueing without end.
    const hub = await fixture.start({ maxPipelinedRequests: 4 })
    const socket = await open(hub.url)
    let closed = false
    socket.once('close', () => (closed = true))
    socket.on('error', () => undefined)
    socket.resume()
    const healthz = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'
    socket.write(`GET /events?topic=t HTTP/1.1\r\nHost: x\r\n\r\n${healthz.repeat(10)}`)
    await waitFor(() => closed, 'the connection to be closed past the bound', 5_000)
  })
})
