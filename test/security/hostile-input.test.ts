import { connect } from 'node:net'
import { describe, expect, it } from 'vitest'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'

let hub: TestHub
const fixture = hubFixture()
const stream = fixture.stream.bind(fixture)

const MiB = 'x'.repeat(1024 * 1024)
const hostile = [
  'a\rb',
  'a\nb',
  'a\r\nb',
  'a\0b',
  '\n\ndata: x',
  'a\n\nevent: evil\ndata: injected\n\n',
  '\ud800',
  'x\udfffy',
  MiB,
]

describe('hostile input in every publish field', () => {
  it('never injects a field or an event, never crashes: a 4xx or a safe encoding', async () => {
    hub = await fixture.start({ epoch: 'e1', maxBodyBytes: 4 * 1024 * 1024 })
    const s = await stream('/events?topic=t&clientId=c')
    await s.waitForText('id: e1-0\n\n')
    const expected: string[] = []
    for (const value of hostile) {
      // data: any string is safe, split into data: lines; it must come back unchanged (CR/CRLF -> LF).
      const result = await hub.publish({ topic: 't', data: value })
      expect(result.status).toBe(200)
      expected.push(value.replace(/\r\n|\r/g, '\n').replace(/[\ud800-\udfff]/g, '\ufffd'))
      // Single-line fields: CR/LF/NUL are refused with 400, never written.
      for (const body of [
        { topic: value, data: 'x' },
        { clientId: value, data: 'x' },
        { topic: 'elsewhere', event: value, data: 'x' },
        { topic: [value], data: 'x' },
      ]) {
        const refused = await hub.publish(body)
        if (/[\r\n\0]/.test(value) || value.length > 1000) {
          expect(refused.status, JSON.stringify(body).slice(0, 80)).toBe(400)
          expect(refused.json.error.code).toMatch(/^ERR_SSE_/)
        } else {
          // Lone surrogates in names are not a wire risk: accepted, encoded as U+FFFD.
          expect(refused.status).toBe(200)
        }
      }
    }
    await s.waitForEvents(expected.length, 10_000)
    expect(s.events.map((e) => e.data)).toEqual(expected)
    // Only our own fields ever appear: no injected event type, no foreign id.
    expect(s.events.every((e) => e.event === undefined && /^e1-\d+$/.test(e.id ?? ''))).toBe(true)
    for (const line of s.text().split('\n')) expect(line).toMatch(/^(data: |id: |retry: |$)/)
    expect((await fetch(`${hub.url}/healthz`)).status).toBe(200)
  })

  it('refuses hostile query parameters with 400 and keeps serving', async () => {
    hub = await fixture.start()
    for (const value of ['a\rb', 'a\nb', 'a\0b', '\n\ndata: x', 'x'.repeat(300)]) {
      for (const name of ['topic', 'clientId']) {
        const response = await fetch(`${hub.url}/events?${name}=${encodeURIComponent(value)}`)
        expect(response.status, `${name}=${JSON.stringify(value).slice(0, 20)}`).toBe(400)
        expect(((await response.json()) as { error: { code: string } }).error.code).toMatch(
          /^ERR_SSE_/,
        )
      }
    }
    // A hostile Last-Event-ID is just an unknown id: a reset event, nothing injected.
    const s = await stream(
      `/events?topic=t&lastEventId=${encodeURIComponent('x\n\ndata: injected\n\n')}`,
    )
    await s.waitForText('ssehub.reset')
    expect(s.events).toHaveLength(1)
    expect(JSON.parse(s.events[0]!.data)).toMatchObject({ reason: 'unknown', topics: ['t'] })
  })

  it('answers a huge URL or header with a clean 431 JSON error, and garbage with 400', async () => {
    hub = await fixture.start()
    const huge = await fetch(`${hub.url}/events?topic=${'a'.repeat(20_000)}`)
    expect(huge.status).toBe(431)
    expect(((await huge.json()) as { error: { code: string } }).error.code).toBe(
      'ERR_SSE_HEADERS_TOO_LARGE',
    )
    const bigHeader = await fetch(`${hub.url}/stats`, { headers: { 'x-big': 'b'.repeat(20_000) } })
    expect(bigHeader.status).toBe(431)
    const port = Number(new URL(hub.url).port)
    const raw = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () => socket.write('NOT HTTP AT ALL\r\n\r\n'))
      let text = ''
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
      socket.on('close', () => resolve(text))
    })
    expect(raw).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/)
    expect(raw).toContain('"code":"ERR_SSE_BAD_REQUEST"')
    expect((await fetch(`${hub.url}/healthz`)).status).toBe(200)
  })
})

describe('slowloris', () => {
  it('closes a connection that sends its headers too slowly', async () => {
    hub = await fixture.start({ headersTimeoutMs: 300, requestTimeoutMs: 1000 })
    const port = Number(new URL(hub.url).port)
    const started = Date.now()
    const answer = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1', () =>
        socket.write('GET /events?topic=a HTTP/1.1\r\nHost: x\r\n'),
      )
      let text = ''
      socket.setEncoding('utf8').on('data', (chunk: string) => (text += chunk))
      // One more header line every 100 ms, never the blank line that ends them.
      const drip = setInterval(() => socket.writable && socket.write('X-Drip: 1\r\n'), 100)
      socket.on('close', () => {
        clearInterval(drip)
        resolve(text)
      })
    })
    expect(answer).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/)
    expect(Date.now() - started).toBeLessThan(3000)
  })
})
