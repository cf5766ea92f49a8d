/**
 * Who is rate-limited: token holders (by subject) and anonymous publishers on a public address
 * (`allowAnonymousPublish`, by IP). The publish key holder and the anonymous loopback mode are the
 * application's own backend: never throttled, at the defaults or any rate.
 */
import { connect } from 'node:net'
import { SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'

const fixture = hubFixture()
const secret = 's'.repeat(32)

/** `count` publishes of `0..count-1` to topic `burst`, `parallel` at a time, with fetch; the statuses. */
async function burst(
  hub: TestHub,
  count: number,
  headers: Record<string, string> = {},
  parallel = 20,
): Promise<number[]> {
  const statuses: number[] = []
  let next = 0
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      for (let i = next++; i < count; i = next++) {
        const response = await fetch(`${hub.url}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify({ topic: 'burst', data: String(i) }),
        })
        await response.arrayBuffer()
        statuses.push(response.status)
      }
    }),
  )
  return statuses
}

/**
 * `count` publishes of `0..count-1` to topic `burst` as fast as a backend can send them: pipelined
 * on `sockets` keep-alive connections, `depth` requests per write (under `maxPipelinedRequests`).
 * Resolves with the statuses.
 */
async function pipelinedBurst(
  hub: TestHub,
  count: number,
  sockets = 25,
  depth = 16,
): Promise<number[]> {
  const statuses: number[] = []
  const port = Number(new URL(hub.url).port)
  let next = 0
  const one = (i: number): string => {
    const body = JSON.stringify({ topic: 'burst', data: String(i) })
    return `POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`
  }
  await Promise.all(
    Array.from(
      { length: sockets },
      () =>
        new Promise<void>((resolve, reject) => {
          const socket = connect(port, '127.0.0.1')
          socket.setEncoding('latin1')
          let received = ''
          let waiting = 0
          const send = (): void => {
            const batch: string[] = []
            while (batch.length < depth && next < count) batch.push(one(next++))
            if (batch.length === 0) {
              socket.end()
              resolve()
              return
            }
            waiting = batch.length
            socket.write(batch.join(''))
          }
          socket.on('data', (chunk: string) => {
            received += chunk
            // Bodies are one-line JSON: every complete status line is a response; keep what
            // follows the last one (it may hold the start of the next).
            let end = 0
            for (const match of received.matchAll(/HTTP\/1\.1 (\d{3}) /g)) {
              statuses.push(Number(match[1]))
              waiting--
              end = match.index + match[0].length
            }
            received = received.slice(end)
            if (waiting === 0) send()
          })
          socket.on('error', reject)
          socket.on('connect', send)
        }),
    ),
  )
  return statuses
}

const token = (sub: string): Promise<string> =>
  new SignJWT({ sub, ssehub: { publish: ['*'] } })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .sign(new TextEncoder().encode(secret))

describe('publish rate limits', () => {
  it('never throttles the anonymous loopback mode: a burst of 5,000 at the defaults, all delivered', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    const stream = await fixture.stream('/events?topic=burst')
    await stream.waitForText('id: e1-0')
    const statuses = await pipelinedBurst(hub, 5_000)
    expect(statuses).toHaveLength(5_000)
    expect(statuses.filter((status) => status !== 200)).toEqual([])
    const events = (await stream.waitForEvents(5_000, 15_000)).filter((e) => e.data !== '')
    expect(events).toHaveLength(5_000)
    expect(new Set(events.map((e) => e.data)).size).toBe(5_000)
  })

  it('never throttles the anonymous loopback mode, whatever the rate', async () => {
    const hub = await fixture.start({ publishRatePerSecond: 1, publishBurst: 1 })
    const statuses = await burst(hub, 50)
    expect(statuses.filter((status) => status !== 200)).toEqual([])
  })

  it('never throttles the publish key holder', async () => {
    const hub = await fixture.start({ publishKey: 'k'.repeat(32), publishRatePerSecond: 1 })
    const statuses = await burst(hub, 50, { authorization: `Bearer ${'k'.repeat(32)}` })
    expect(statuses.filter((status) => status !== 200)).toEqual([])
  })

  it('limits a token holder by subject: 429 with Retry-After', async () => {
    const hub = await fixture.start({ jwtSecret: secret, publishRatePerSecond: 1, publishBurst: 2 })
    const ada = { authorization: `Bearer ${await token('ada')}` }
    expect(await burst(hub, 2, ada, 1)).toEqual([200, 200])
    const limited = await fetch(`${hub.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...ada },
      body: JSON.stringify({ topic: 'burst', data: 'x' }),
    })
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('1')
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe(
      'ERR_SSE_RATE_LIMITED',
    )
    // Another subject has its own bucket.
    const bob = { authorization: `Bearer ${await token('bob')}` }
    expect(await burst(hub, 1, bob, 1)).toEqual([200])
  })

  it('limits anonymous publishers when they may come from a public address (allowAnonymousPublish)', async () => {
    const hub = await fixture.start({
      allowAnonymousPublish: true,
      publishRatePerSecond: 1,
      publishBurst: 2,
    })
    const statuses = await burst(hub, 3, {}, 1)
    expect(statuses).toEqual([200, 200, 429])
  })
})
