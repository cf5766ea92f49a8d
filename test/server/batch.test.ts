import { connect } from 'node:net'
import { SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'

const fixture = hubFixture()
const secret = 's'.repeat(32)

type Answer = {
  status: number
  json: { results?: unknown[]; error?: { code: string; message: string } }
}

/** POST /publish/batch with fetch (undici: whichever path of the server takes it). */
async function batch(
  hub: TestHub,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(`${hub.url}/publish/batch`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  })
  return { status: response.status, json: (await response.json()) as Answer['json'] }
}

/** The same request in one raw write (the socket-level fast path takes it). */
function rawBatch(hub: TestHub, body: string): Promise<{ head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(Number(new URL(hub.url).port), '127.0.0.1')
    let received = ''
    socket.setEncoding('latin1')
    socket.on('data', (chunk: string) => {
      received += chunk
      const end = received.indexOf('\r\n\r\n')
      const length = Number(/\r\ncontent-length: (\d+)/i.exec(received)?.[1] ?? -1)
      if (end !== -1 && length >= 0 && received.length >= end + 4 + length) {
        socket.destroy()
        resolve({ head: received.slice(0, end), body: received.slice(end + 4, end + 4 + length) })
      }
    })
    socket.on('error', reject)
    socket.write(
      `POST /publish/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    )
  })
}

describe('POST /publish/batch', () => {
  it('publishes every event in order, to topics and client ids, with one result each', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    const onA = await fixture.stream('/events?topic=a')
    const onU = await fixture.stream('/events?clientId=u1')
    await Promise.all([onA, onU].map((s) => s.waitForText('id: e1-0')))
    const answer = await batch(hub, [
      { topic: 'a', data: 'one' },
      { clientId: 'u1', event: 'note', data: { n: 2 } },
      { topic: 'a', data: 'three' },
    ])
    expect(answer).toEqual({
      status: 200,
      json: {
        results: [
          { id: 'e1-1', localConnections: 1 },
          { id: 'e1-2', localConnections: 1 },
          { id: 'e1-3', localConnections: 1 },
        ],
      },
    })
    await onA.waitForText('id: e1-3\ndata: three\n\n')
    expect(onA.text()).toBe(
      'retry: 2000\n\nid: e1-0\n\nid: e1-1\ndata: one\n\nid: e1-3\ndata: three\n\n',
    )
    await onU.waitForText('event: note\nid: e1-2\ndata: {"n":2}\n\n')
  })

  it('is answered by the fast path with the same body when it arrives in one write', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    const answer = await rawBatch(hub, '[{"topic":"a","data":1},{"topic":"b","data":2}]')
    expect(answer.head).toMatch(/^HTTP\/1\.1 200 OK\r\n[^]*\r\ndate: /i)
    expect(JSON.parse(answer.body)).toEqual({
      results: [
        { id: 'e1-1', localConnections: 0 },
        { id: 'e1-2', localConnections: 0 },
      ],
    })
  })

  it('publishes none of a batch with one bad event, and says which one', async () => {
    const hub = await fixture.start({ epoch: 'e1', maxBatchEvents: 3 })
    const stream = await fixture.stream('/events?topic=a')
    await stream.waitForText('id: e1-0')
    const bad = await batch(hub, [
      { topic: 'a', data: 1 },
      { topic: 'a\nb', data: 2 },
    ])
    expect(bad.status).toBe(400)
    expect(bad.json.error?.message).toMatch(/^events\[1\]: /)
    for (const [body, status, pattern] of [
      ['[]', 400, /non-empty JSON array/],
      ['{"topic":"a","data":1}', 400, /non-empty JSON array/],
      ['[1]', 400, /events\[0\] must be an object/],
      ['[{"topic":"a"', 400, /not valid JSON/],
      [
        JSON.stringify(Array.from({ length: 4 }, () => ({ topic: 'a', data: 1 }))),
        400,
        /at most 3/,
      ],
    ] as const) {
      const answer = await batch(hub, body)
      expect(answer.status).toBe(status)
      expect(answer.json.error?.message).toMatch(pattern)
    }
    const form = await fetch(`${hub.url}/publish/batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'topic=a&data=1',
    })
    expect(form.status).toBe(415)
    // Nothing reached the stream: the next event is the first one.
    expect((await hub.publish({ topic: 'a', data: 'marker' })).json).toEqual({
      id: 'e1-1',
      localConnections: 1,
    })
    await stream.waitForText('id: e1-1\ndata: marker\n\n')
    expect(stream.events.map((e) => e.data)).toEqual(['marker'])
  })

  it('takes one rate token per event and refuses a batch larger than the burst', async () => {
    const hub = await fixture.start({
      publishRatePerSecond: 1,
      publishBurst: 5,
      // Anonymous publishers are rate-limited only when they may come from a public address.
      allowAnonymousPublish: true,
    })
    const events = (n: number): unknown[] =>
      Array.from({ length: n }, () => ({ topic: 'a', data: 1 }))
    const tooBig = await batch(hub, events(6))
    expect(tooBig.status).toBe(400)
    expect(tooBig.json.error?.message).toMatch(/at most 5 events \(publishBurst\)/)
    expect((await batch(hub, events(5))).status).toBe(200)
    const limited = await batch(hub, events(1))
    expect(limited.status).toBe(429)
    expect(limited.json.error?.code).toBe('ERR_SSE_RATE_LIMITED')
  })

  it('checks a token against the targets of every event', async () => {
    const hub = await fixture.start({ jwtSecret: secret, epoch: 'e1' })
    const token = await new SignJWT({ ssehub: { publish: ['a'] } })
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('svc')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret))
    const auth = { authorization: `Bearer ${token}` }
    expect((await batch(hub, [{ topic: 'a', data: 1 }])).status).toBe(401)
    const forbidden = await batch(
      hub,
      [
        { topic: 'a', data: 1 },
        { topic: 'b', data: 2 },
      ],
      auth,
    )
    expect(forbidden.status).toBe(403)
    const ok = await batch(hub, [{ topic: 'a', data: 1 }], auth)
    expect(ok).toEqual({ status: 200, json: { results: [{ id: 'e1-1', localConnections: 0 }] } })
  })
})
