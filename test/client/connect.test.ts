import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ResponseError, connect, isSseError, reconnectDelay } from '../../src/client/index.js'
import { mixedEvents, startSseTestServer, type SseTestServer } from '../helpers/sse-test-server.js'
import { waitFor } from '../helpers/wait.js'
import { deadUrl, track, type Tracked } from './track.js'

let server: SseTestServer
const open: Tracked[] = []

beforeEach(async () => {
  server = await startSseTestServer()
})

afterEach(async () => {
  for (const tracked of open.splice(0)) tracked.connection.close()
  await server.close()
})

function start(...args: Parameters<typeof track>): Tracked {
  const tracked = track(...args)
  open.push(tracked)
  return tracked
}

const ev = (data: string, lastEventId = '', type = 'message') => ({ type, data, lastEventId })

describe('connect: events and reconnection', () => {
  it('delivers events in order, then reconnects with Last-Event-ID and continues', async () => {
    const t = start({ url: `${server.url}/counter` })
    await waitFor(() => t.events.length >= 6, '6 events')
    t.connection.close()
    expect(t.events.slice(0, 6)).toEqual([1, 2, 3, 4, 5, 6].map((n) => ev(String(n), String(n))))
    const hits = server.hits('/counter')
    expect(hits[0]!.headers['last-event-id']).toBeUndefined()
    expect(hits[1]!.headers['last-event-id']).toBe('3')
    expect(hits[0]!.headers.accept).toBe('text/event-stream')
    expect(t.log.slice(0, 9)).toEqual([
      'open 200',
      'event 1',
      'event 2',
      'event 3',
      'reconnecting 1',
      'open 200',
      'event 4',
      'event 5',
      'event 6',
    ])
    expect(t.reconnects[0]).toEqual({ attempt: 1, delayMs: 20, error: undefined })
    expect(t.closed).toEqual([{ reason: 'close' }])
    expect(t.connection.state).toBe('closed')
    expect(t.connection.lastEventId).toBe('6')
  })

  it('reads the spec examples and edge cases of /mixed exactly (BOM, CR, CRLF, split characters)', async () => {
    const t = start({ url: `${server.url}/mixed`, reconnect: false })
    await waitFor(() => t.ended(), 'the end')
    expect(t.events).toEqual(mixedEvents)
    expect(t.comments).toEqual(['comment'])
    expect(t.closed).toEqual([{ reason: 'end' }])
  })

  it('honours retry: from the server, over the retryMs option', async () => {
    const t = start({ url: `${server.url}/retry-100`, reconnect: { retryMs: 60_000 } })
    await waitFor(() => server.hits('/retry-100').length >= 2, 'a reconnection')
    const [first, second] = server.hits('/retry-100')
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(95)
    expect(t.reconnects[0]!.delayMs).toBe(100)
    expect(t.connection.retryMs).toBe(100)
  })

  it('waits retryMs before reconnecting when the server sent no retry:', async () => {
    const t = start({ url: `${server.url}/end-after-one`, reconnect: { retryMs: 150 } })
    await waitFor(() => server.hits('/end-after-one').length >= 2, 'a reconnection')
    const [first, second] = server.hits('/end-after-one')
    expect(second!.at - first!.at).toBeGreaterThanOrEqual(145)
    expect(t.reconnects[0]!.delayMs).toBe(150)
  })

  it('sends the lastEventId option as Last-Event-ID, and none while it is empty', async () => {
    const t = start({ url: `${server.url}/echo-last-event-id`, lastEventId: 'abc' })
    await waitFor(() => t.events.length >= 2, 'two events')
    expect(t.events.slice(0, 2)).toEqual([ev('abc', 'next'), ev('next', 'next')])
    const u = start({ url: `${server.url}/echo-last-event-id`, reconnect: false })
    await waitFor(() => u.ended(), 'the end')
    expect(u.events).toEqual([ev('none', 'next')])
  })

  it('reconnects after a network error mid-stream, with the last id received', async () => {
    const t = start({ url: `${server.url}/drop` })
    await waitFor(() => t.events.length >= 2, 'two events')
    expect(t.events.slice(0, 2)).toEqual([ev('hit 1', '1'), ev('hit 2', '2')])
    expect(server.hits('/drop')[1]!.headers['last-event-id']).toBe('1')
    expect(t.reconnects[0]!.error?.code).toBe('ERR_SSE_CONNECTION_FAILED')
    expect(t.failures).toEqual([])
  })

  it('backs off on consecutive failures and resets after an open stream', async () => {
    const t = start({
      url: `${server.url}/flaky?fails=2`,
      reconnect: { retryMs: 20, jitter: false },
    })
    await waitFor(() => t.reconnects.length >= 3, 'three reconnections')
    // Two failed attempts (20, then 40), an open stream (/counter sends retry: 20), an end: 20.
    expect(t.reconnects.slice(0, 3).map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 20],
      [2, 40],
      [1, 20],
    ])
    expect(t.reconnects[0]!.error?.message).toMatch(
      /^Connection to http:\/\/127\.0\.0\.1:\d+\/flaky failed/,
    )
    expect(t.reconnects[2]!.error).toBeUndefined()
    expect(t.events.slice(0, 3).map((e) => e.data)).toEqual(['1', '2', '3'])
  })

  it('gives up after maxAttempts failed reconnections with ERR_SSE_CONNECTION_FAILED', async () => {
    const t = start({
      url: await deadUrl(),
      reconnect: { retryMs: 5, maxAttempts: 2, jitter: false },
    })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.reconnects.map((r) => [r.attempt, r.delayMs])).toEqual([
      [1, 5],
      [2, 10],
    ])
    expect(t.failures).toHaveLength(1)
    expect(isSseError(t.failures[0])).toBe(true)
    expect(t.failures[0]).toMatchObject({ code: 'ERR_SSE_CONNECTION_FAILED' })
    expect(t.failures[0]!.message).toMatch(
      /^Gave up on http:\/\/127\.0\.0\.1:\d+\/gone after 2 reconnection attempts: Connection to .* failed: fetch failed/,
    )
    expect(t.closed).toEqual([])
  })

  it('with reconnect: false, ends (onClosed "end") when the server ends the stream', async () => {
    const t = start({ url: `${server.url}/end-after-one`, reconnect: false })
    await waitFor(() => t.ended(), 'the end')
    expect(t.log).toEqual(['open 200', 'event one', 'closed end'])
    expect(server.hits('/end-after-one')).toHaveLength(1)
  })

  it('with reconnect: false, fails on a network error', async () => {
    const t = start({ url: `${server.url}/drop`, reconnect: false })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.events).toEqual([ev('hit 1', '1')])
    expect(t.failures[0]).toMatchObject({ code: 'ERR_SSE_CONNECTION_FAILED' })
    expect(t.closed).toEqual([])
  })
})

describe('connect: responses that stop the client', () => {
  it('204 closes for good: onClosed "no-content", no open, no reconnection', async () => {
    const t = start({ url: `${server.url}/status/204`, reconnect: { retryMs: 1 } })
    await waitFor(() => t.ended(), 'the end')
    expect(t.log).toEqual(['closed no-content'])
    expect(t.connection.state).toBe('closed')
    expect(server.hits('/status/204')).toHaveLength(1)
  })

  it('a 204 on reconnection stops the stream after its events', async () => {
    const t = start({ url: `${server.url}/then-204` })
    await waitFor(() => t.ended(), 'the end')
    expect(t.log).toEqual(['open 200', 'event first', 'reconnecting 1', 'closed no-content'])
    expect(server.hits('/then-204')[1]!.headers['last-event-id']).toBe('1')
  })

  it('500 fails without reconnecting, with a ResponseError carrying the status and body', async () => {
    const t = start({ url: `${server.url}/status/500?token=secret`, reconnect: { retryMs: 1 } })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.failures).toHaveLength(1)
    const error = t.failures[0] as ResponseError
    expect(error).toBeInstanceOf(ResponseError)
    expect(error).toMatchObject({
      code: 'ERR_SSE_BAD_RESPONSE',
      status: 500,
      statusText: 'Internal Server Error',
      contentType: 'text/plain',
      body: 'status 500 body',
    })
    // The query string (a token, often) is not in the message.
    expect(error.message).toBe(
      `server answered 500 Internal Server Error for ${server.url}/status/500`,
    )
    expect(t.log).toEqual([`failure ${error.message}`])
    expect(server.hits('/status/500')).toHaveLength(1)
  })

  it('another 2xx with text/event-stream fails, as the spec says; acceptAny2xx lets it open', async () => {
    const strict = start({ url: `${server.url}/status/201?sse=1`, reconnect: { retryMs: 1 } })
    await waitFor(() => strict.ended(), 'the failure')
    expect(strict.log).toEqual([`failure server answered 201 Created for ${server.url}/status/201`])
    expect(strict.failures[0]).toMatchObject({ code: 'ERR_SSE_BAD_RESPONSE', status: 201 })
    const lenient = start({
      url: `${server.url}/status/201?sse=1`,
      reconnect: false,
      acceptAny2xx: true,
    })
    await waitFor(() => lenient.ended(), 'the end')
    expect(lenient.log).toEqual(['open 201', 'event status 201', 'closed end'])
    expect(server.hits('/status/201')).toHaveLength(2)
  })

  it('a wrong Content-Type fails without reconnecting', async () => {
    const t = start({ url: `${server.url}/wrong-type`, reconnect: { retryMs: 1 } })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.failures[0]).toBeInstanceOf(ResponseError)
    expect(t.failures[0]).toMatchObject({ status: 200, body: '{"ok":true}' })
    expect(t.failures[0]!.message).toBe(
      `expected Content-Type text/event-stream, got application/json (status 200) from ${server.url}/wrong-type`,
    )
    expect(server.hits('/wrong-type')).toHaveLength(1)
  })

  it('a line over maxLineChars fails the stream with ERR_SSE_LINE_TOO_LONG', async () => {
    const t = start({ url: `${server.url}/big-line?size=1000`, maxLineChars: 100 })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.events).toEqual([])
    expect(t.failures[0]).toMatchObject({ code: 'ERR_SSE_LINE_TOO_LONG' })
    expect(server.hits('/big-line')).toHaveLength(1)
  })
})

describe('connect: abort and close', () => {
  it('abort while open: onClosed "abort" exactly once, no failure, no reconnection', async () => {
    const controller = new AbortController()
    const t = start({ url: `${server.url}/silent`, signal: controller.signal })
    await waitFor(() => t.events.length === 1, 'the first event')
    controller.abort()
    expect(t.log).toEqual(['open 200', 'event hit 1', 'closed abort'])
    t.connection.close()
    controller.abort()
    expect(t.closed).toEqual([{ reason: 'abort' }])
    expect(t.connection.state).toBe('closed')
    expect(server.hits('/silent')).toHaveLength(1)
  })

  it('abort during a slow connect, and during the wait before a reconnection', async () => {
    const controller = new AbortController()
    const t = start({ url: `${server.url}/slow-connect?ms=10000`, signal: controller.signal })
    await waitFor(() => server.hits('/slow-connect').length === 1, 'the request')
    controller.abort()
    expect(t.log).toEqual(['closed abort'])

    const later = new AbortController()
    const u = start({
      url: `${server.url}/end-after-one`,
      signal: later.signal,
      reconnect: { retryMs: 60_000 },
    })
    await waitFor(() => u.reconnects.length === 1, 'the wait')
    later.abort()
    expect(u.log).toEqual(['open 200', 'event one', 'reconnecting 1', 'closed abort'])
  })

  it('an already aborted signal closes without a request, after connect() returned', async () => {
    const t = start({ url: `${server.url}/counter`, signal: AbortSignal.abort() })
    expect(t.log).toEqual([])
    await waitFor(() => t.ended(), 'the close')
    expect(t.log).toEqual(['closed abort'])
    expect(server.hits('/counter')).toHaveLength(0)
  })

  it('close() from onEvent stops delivery at once, even within one chunk', async () => {
    const t = start(
      { url: `${server.url}/many?count=50` },
      {
        onEvent(event) {
          if (event.lastEventId === '2') t.connection.close()
        },
      },
    )
    await waitFor(() => t.ended(), 'the close')
    expect(t.events.map((e) => e.lastEventId)).toEqual(['1', '2'])
    expect(t.closed).toEqual([{ reason: 'close' }])
  })

  it('an exception in onEvent fails the stream with that exception', async () => {
    const boom = new Error('listener bug')
    const t = start(
      { url: `${server.url}/counter` },
      {
        onEvent() {
          throw boom
        },
      },
    )
    await waitFor(() => t.ended(), 'the failure')
    expect(t.failures).toEqual([boom])
    expect(t.events).toHaveLength(1)
    expect(server.hits('/counter')).toHaveLength(1)
  })
})

describe('connect: requests', () => {
  it('POSTs a body, and sends it again on reconnection', async () => {
    const t = start({
      url: `${server.url}/post-echo`,
      method: 'post',
      headers: { 'content-type': 'application/json' },
      body: '{"prompt":"hi"}',
      reconnect: { retryMs: 10 },
    })
    await waitFor(() => t.events.length >= 2, 'two events')
    const echo = JSON.parse(t.events[1]!.data) as Record<string, unknown>
    expect(echo).toEqual({
      method: 'POST',
      contentType: 'application/json',
      authorization: null,
      accept: 'text/event-stream',
      body: '{"prompt":"hi"}',
    })
    expect(server.hits('/post-echo').map((r) => r.body)).toEqual(
      Array(server.hits('/post-echo').length).fill('{"prompt":"hi"}'),
    )
  })

  it('calls a headers function before every attempt: refreshed tokens', async () => {
    const infos: unknown[] = []
    const t = start({
      url: `${server.url}/echo-last-event-id`,
      headers: async (info) => {
        infos.push(info)
        await Promise.resolve()
        return { authorization: `Bearer token-${info.attempt}` }
      },
    })
    await waitFor(() => t.events.length >= 2, 'two events')
    const hits = server.hits('/echo-last-event-id')
    expect(hits[0]!.headers.authorization).toBe('Bearer token-1')
    expect(hits[1]!.headers.authorization).toBe('Bearer token-2')
    expect(infos.slice(0, 2)).toEqual([
      { attempt: 1, lastEventId: '' },
      { attempt: 2, lastEventId: 'next' },
    ])
  })

  it('a headers function that throws fails the stream before any request', async () => {
    const t = start({
      url: `${server.url}/counter`,
      headers: () => {
        throw new Error('token refresh failed')
      },
    })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.failures.map((e) => e.message)).toEqual(['token refresh failed'])
    expect(server.hits('/counter')).toHaveLength(0)
  })

  it('uses an injected fetch, with the spec’s request settings', async () => {
    const calls: [string, RequestInit][] = []
    const t = start({
      url: 'https://example.test/stream',
      reconnect: false,
      fetch: (url, init) => {
        calls.push([url, init])
        return Promise.resolve(
          new Response('data: from a fake fetch\n\n', {
            headers: { 'content-type': 'text/event-stream; charset=utf-8' },
          }),
        )
      },
    })
    await waitFor(() => t.ended(), 'the end')
    expect(t.log).toEqual(['open 200', 'event from a fake fetch', 'closed end'])
    const [url, init] = calls[0]!
    expect(url).toBe('https://example.test/stream')
    expect(init).toMatchObject({ method: 'GET', cache: 'no-store', credentials: 'same-origin' })
    expect(init.signal).toBeInstanceOf(AbortSignal)
    expect(new Headers(init.headers).get('accept')).toBe('text/event-stream')
  })

  it('rejects bad options synchronously', () => {
    const onFailure = (): void => {}
    expect(() => track({ url: 'not a url' })).toThrow(TypeError)
    expect(() => track({ url: server.url, body: 'x' })).toThrow(/GET request cannot have a body/)
    expect(() => track({ url: server.url, reconnect: { retryMs: -1 } })).toThrow(
      'Expected `retryMs` to be a non-negative finite number, got `-1` (number)',
    )
    expect(() => track({ url: server.url, reconnect: { maxAttempts: 1.5 } })).toThrow(RangeError)
    expect(() => track({ url: server.url, heartbeatTimeoutMs: 0 })).toThrow(RangeError)
    expect(() =>
      // @ts-expect-error onFailure is required
      connect({ url: server.url }, { onClosed: onFailure }),
    ).toThrow(/onFailure/)
  })
})

describe('connect: heartbeat watchdog', () => {
  it('reconnects when no byte arrives for heartbeatTimeoutMs', async () => {
    const t = start({ url: `${server.url}/silent`, heartbeatTimeoutMs: 150 })
    await waitFor(() => t.events.length >= 2, 'a reconnection')
    expect(t.events.slice(0, 2)).toEqual([ev('hit 1', '1'), ev('hit 2', '2')])
    expect(t.reconnects[0]!.error?.message).toMatch(
      /^No data from http:\/\/127\.0\.0\.1:\d+\/silent for 150 ms/,
    )
    expect(server.hits('/silent')[1]!.headers['last-event-id']).toBe('1')
  })

  it('fails with reconnect: false', async () => {
    const t = start({ url: `${server.url}/silent`, heartbeatTimeoutMs: 100, reconnect: false })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.failures[0]).toMatchObject({ code: 'ERR_SSE_CONNECTION_FAILED' })
  })

  it('does not fire while comments keep arriving', async () => {
    const t = start({ url: `${server.url}/heartbeat?ms=20`, heartbeatTimeoutMs: 400 })
    await waitFor(() => t.comments.length >= 30, '30 heartbeats (over 400 ms)')
    expect(t.reconnects).toEqual([])
    expect(server.hits('/heartbeat')).toHaveLength(1)
  })
})

describe('reconnectDelay', () => {
  const options = { retryMs: 100, maxRetryMs: 1000, jitter: false }

  it('waits the reconnection time first, then doubles up to the ceiling', () => {
    expect([1, 2, 3, 4, 5, 6, 50].map((n) => reconnectDelay(n, options))).toEqual([
      100, 200, 400, 800, 1000, 1000, 1000,
    ])
  })

  it('draws jittered delays between the reconnection time and the ceiling', () => {
    const jittered = { ...options, jitter: true }
    expect(reconnectDelay(1, jittered, () => 0.99)).toBe(100)
    expect(reconnectDelay(3, jittered, () => 0)).toBe(100)
    expect(reconnectDelay(3, jittered, () => 0.999999)).toBe(400)
    expect(reconnectDelay(3, jittered, () => 0.5)).toBe(250)
  })

  it('never goes below a server retry larger than the ceiling', () => {
    expect(reconnectDelay(4, { retryMs: 5000, maxRetryMs: 1000, jitter: false })).toBe(5000)
  })
})
