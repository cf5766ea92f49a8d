import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import type { CloseReason, Connection } from '../../src/index.js'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'

let hub: TestHub
const fixture = hubFixture()
const stream = fixture.stream.bind(fixture)

describe('heartbeats', () => {
  it('sends a comment on idle connections from one hub timer', async () => {
    hub = await fixture.start({ heartbeatMs: 40 })
    const s = await stream('/events?topic=a')
    await s.waitForText(':\n\n:\n\n', 2000)
    expect(s.events).toEqual([])
  })
})

describe('lifecycle', () => {
  it('reports connected and closed with the reason, and a closed connection leaves every index', async () => {
    hub = await fixture.start()
    const events: string[] = []
    hub.server.hub.on('connected', (c) => events.push(`connected ${c.clientId}`))
    hub.server.hub.on('closed', (c, reason) => events.push(`closed ${c.clientId} ${reason}`))
    const s = await stream('/events?topic=a&topic=b&clientId=u1')
    await waitFor(() => events.length === 1, 'connected')
    expect(hub.server.hub.stats()).toMatchObject({ connections: 1, topics: 2, clientIds: 1 })
    s.close()
    await waitFor(() => events.length === 2, 'closed')
    expect(events).toEqual(['connected u1', 'closed u1 client-gone'])
    expect(hub.server.hub.stats()).toMatchObject({ connections: 0, topics: 0, clientIds: 0 })
    expect(hub.server.hub.subscriberCount('a')).toBe(0)
  })

  it('closes connections older than maxConnectionAgeMs with reason timeout', async () => {
    hub = await fixture.start({ maxConnectionAgeMs: 60 })
    const reasons: CloseReason[] = []
    hub.server.hub.on('closed', (_c, reason) => reasons.push(reason))
    const s = await stream('/events?topic=a')
    await s.ended
    expect(reasons).toEqual(['timeout'])
  })
})

describe('slow consumers', () => {
  it('closes a client that stops reading (reason slow-consumer) without delaying the others', async () => {
    hub = await fixture.start({ maxQueuedBytes: 64 * 1024, epoch: 'e1' })
    const reasons: CloseReason[] = []
    hub.server.hub.on('closed', (_c, reason) => reasons.push(reason))
    // A raw socket that sends the request and then never reads.
    const port = Number(new URL(hub.url).port)
    const stalled = connect(port, '127.0.0.1')
    fixture.track(stalled)
    stalled.write('GET /events?topic=big&clientId=stalled HTTP/1.1\r\nHost: x\r\n\r\n')
    stalled.pause()
    const fast = await stream('/events?topic=big')
    await waitFor(() => hub.server.hub.subscriberCount('big') === 2, 'both subscribed')
    const payload = 'x'.repeat(100_000)
    let published = 0
    while (!reasons.includes('slow-consumer') && published < 500) {
      await hub.server.hub.publish({ topic: 'big', data: payload })
      published++
      // Let the fast reader drain between publishes, as a real client would.
      await fast.waitForEvents(published)
    }
    expect(reasons).toEqual(['slow-consumer'])
    expect(hub.server.hub.stats().slowConsumerCloses).toBe(1)
    expect(hub.server.hub.clientConnectionCount('stalled')).toBe(0)
    await hub.server.hub.publish({ topic: 'big', data: 'after' })
    await fast.waitForEvents(published + 1)
    expect(fast.events.at(-1)!.data).toBe('after')
    expect(fast.events.length).toBe(published + 1)
  })
})

describe('limits', () => {
  it('refuses past maxConnections with 503 and Retry-After', async () => {
    hub = await fixture.start({ maxConnections: 2 })
    await stream('/events?topic=a')
    await stream('/events?topic=a')
    const response = await fetch(`${hub.url}/events?topic=a`)
    expect(response.status).toBe(503)
    expect(response.headers.get('retry-after')).toBe('5')
    expect(((await response.json()) as { error: { code: string } }).error.code).toBe(
      'ERR_SSE_LIMIT_REACHED',
    )
    expect(hub.server.hub.stats().rejections).toBe(1)
  })

  it('refuses past maxConnectionsPerClient', async () => {
    hub = await fixture.start({ maxConnectionsPerClient: 1 })
    await stream('/events?clientId=u1')
    expect((await fetch(`${hub.url}/events?clientId=u1`)).status).toBe(503)
    const other = await stream('/events?clientId=u2')
    expect(other.status).toBe(200)
  })

  it('evicts the least recently active connection under overflow evict', async () => {
    hub = await fixture.start({ maxConnections: 2, overflow: 'evict' })
    const reasons: [string | undefined, CloseReason][] = []
    hub.server.hub.on('closed', (c, reason) => reasons.push([c.clientId, reason]))
    const old = await stream('/events?clientId=old')
    const busy = await stream('/events?clientId=busy')
    await waitFor(() => hub.server.hub.stats().connections === 2, 'two open')
    await hub.publish({ clientId: 'busy', data: 'keeps it active' })
    await busy.waitForEvents(1)
    // `old` was written to last at connect time (earlier than `busy`): it goes.
    const fresh = await stream('/events?clientId=new')
    expect(fresh.status).toBe(200)
    await old.ended
    expect(reasons).toEqual([['old', 'evicted']])
    expect(busy.isEnded()).toBe(false)
    expect(hub.server.hub.stats().evictions).toBe(1)
  })
})

describe('introspection', () => {
  it('serves /healthz, /stats, /clients, /topics/{topic} and /metrics', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const s = await stream('/events?topic=room%2F1&clientId=u1')
    await s.waitForText('id: e1-0\n\n')
    await hub.publish({ topic: 'room/1', data: 'hi' })
    await s.waitForEvents(1)
    const health = (await (await fetch(`${hub.url}/healthz`)).json()) as {
      status: string
      broker: { broker: string; ok: boolean }
    }
    expect(health.status).toBe('ok')
    expect(health.broker).toMatchObject({ broker: 'memory', ok: true })
    const stats = (await (await fetch(`${hub.url}/stats`)).json()) as Record<string, number>
    expect(stats).toMatchObject({
      connections: 1,
      clientIds: 1,
      topics: 1,
      eventsPublished: 1,
      eventsOut: 1,
    })
    expect(stats.bytesOut).toBe(Buffer.byteLength(s.text()))
    // One node: its id is the one /stats gives, and it holds every subscriber.
    const node = (stats as unknown as { node: string }).node
    expect(node).toMatch(/^.+:\d+$/)
    const clients = (await (await fetch(`${hub.url}/clients`)).json()) as {
      connections: {
        clientId: string
        topics: string[]
        remoteAddress: string
        queuedBytes: number
        connectedAt: string
      }[]
    }
    expect(clients.connections).toHaveLength(1)
    expect(clients.connections[0]).toMatchObject({
      node,
      clientId: 'u1',
      topics: ['room/1'],
      remoteAddress: '127.0.0.1',
      queuedBytes: 0,
    })
    expect(Date.parse(clients.connections[0]!.connectedAt)).toBeGreaterThan(0)
    expect(await (await fetch(`${hub.url}/topics/room%2F1`)).json()).toEqual({
      topic: 'room/1',
      state: 'open',
      lastEventId: expect.any(String) as unknown,
      subscribers: 1,
      nodes: { [node]: 1 },
    })
    expect(await (await fetch(`${hub.url}/topics/none`)).json()).toEqual({
      topic: 'none',
      state: 'unknown',
      lastEventId: null,
      subscribers: 0,
      nodes: { [node]: 0 },
    })
    const metrics = await (await fetch(`${hub.url}/metrics`)).text()
    expect(metrics).toMatch(/^ssehub_connections 1$/m)
    expect(metrics).toMatch(/^ssehub_events_published_total 1$/m)
    expect(metrics).toMatch(/^ssehub_broker_up 1$/m)
    const missing = await fetch(`${hub.url}/nope`)
    expect(missing.status).toBe(404)
  })
})

describe('CORS', () => {
  it('allows listed origins on streams and answers the publish preflight', async () => {
    hub = await fixture.start({ corsOrigins: ['http://app.test'] })
    const s = await stream('/events?topic=a', { origin: 'http://app.test' })
    expect(s.headers['access-control-allow-origin']).toBe('http://app.test')
    expect(s.headers['access-control-allow-credentials']).toBe('true')
    const other = await stream('/events?topic=a', { origin: 'http://evil.test' })
    expect(other.headers['access-control-allow-origin']).toBeUndefined()
    const preflight = await fetch(`${hub.url}/publish`, {
      method: 'OPTIONS',
      headers: {
        origin: 'http://app.test',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization, content-type',
      },
    })
    expect(preflight.status).toBe(204)
    expect(preflight.headers.get('access-control-allow-origin')).toBe('http://app.test')
    expect(preflight.headers.get('access-control-allow-methods')).toContain('POST')
    expect(preflight.headers.get('access-control-allow-headers')).toMatch(/Authorization/)
    const published = await hub.publish({ topic: 'a', data: 'x' }, { origin: 'http://app.test' })
    expect(published.status).toBe(200)
  })

  it("allows any origin with '*'", async () => {
    hub = await fixture.start({ corsOrigins: '*' })
    const s = await stream('/events?topic=a', { origin: 'http://x.test' })
    expect(s.headers['access-control-allow-origin']).toBe('*')
  })
})

describe('graceful shutdown', () => {
  it('ends 500 streams in waves across the budget, each told a jittered retry first, and closes within the budget', async () => {
    const budgetMs = 1_000
    hub = await fixture.start({ shutdownTimeoutMs: budgetMs, heartbeatMs: null })
    const streams = await Promise.all(Array.from({ length: 500 }, () => stream('/events?topic=a')))
    await waitFor(() => hub.server.hub.stats().connections === 500, '500 open', 10_000)
    const start = Date.now()
    const endedAt = streams.map((s) => s.ended.then(() => Date.now() - start))
    await hub.close()
    const closedIn = Date.now() - start
    const times = await Promise.all(endedAt)
    // Within the budget, plus a little for the loop's turns.
    expect(closedIn).toBeLessThan(budgetMs + 200)
    // A histogram over tenths of the budget: no tenth holds more than 15 % of the closes.
    const tenths = Array.from({ length: 10 }, () => 0)
    for (const t of times) tenths[Math.min(9, Math.floor((t / budgetMs) * 10))]!++
    expect(Math.max(...tenths), `closes per tenth: ${tenths.join(' ')}`).toBeLessThanOrEqual(75)
    // Every stream got `retry: <ms within the spread>` as its last frame.
    const retries = streams.map((s) => /retry: (\d+)\n\n$/.exec(s.text())?.[1])
    expect(retries.filter((r) => r === undefined)).toEqual([])
    const values = retries.map(Number)
    expect(Math.max(...values)).toBeLessThan(800)
    expect(new Set(values).size).toBeGreaterThan(100)
    expect(hub.server.hub.stats().closed.shutdown).toBe(500)
  }, 30_000)

  it('refuses publishes while the waves run, and a stream still waits for its wave', async () => {
    hub = await fixture.start({ shutdownTimeoutMs: 1_000, heartbeatMs: null })
    const streams = await Promise.all(Array.from({ length: 100 }, () => stream('/events?topic=a')))
    await waitFor(() => hub.server.hub.stats().connections === 100, '100 open', 10_000)
    const closing = hub.close()
    await waitFor(() => streams.some((s) => s.isEnded()), 'the first wave')
    expect(streams.every((s) => s.isEnded())).toBe(false)
    await expect(hub.server.hub.publish({ topic: 'a', data: 'x' })).rejects.toMatchObject({
      code: 'ERR_SSE_CLOSED',
    })
    await closing
    // The server ended every stream; the last ends reach the clients a moment later.
    await waitFor(() => streams.every((s) => s.isEnded()), 'every stream to end', 2_000)
  }, 30_000)

  it('ends every stream, refuses new work and closes', async () => {
    hub = await fixture.start()
    const reasons: CloseReason[] = []
    hub.server.hub.on('closed', (_c: Connection, reason) => reasons.push(reason))
    const a = await stream('/events?topic=a')
    const b = await stream('/events?clientId=b')
    await waitFor(() => hub.server.hub.stats().connections === 2, 'open')
    await hub.close()
    await a.ended
    await b.ended
    expect(reasons).toEqual(['shutdown', 'shutdown'])
    await expect(hub.server.hub.publish({ topic: 'a', data: 'x' })).rejects.toMatchObject({
      code: 'ERR_SSE_CLOSED',
    })
  })
})
