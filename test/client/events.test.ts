import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { ResponseError, events, type EventStream } from '../../src/client/index.js'
import type { ParsedEvent } from '../../src/wire/parse.js'
import { mixedEvents, startSseTestServer, type SseTestServer } from '../helpers/sse-test-server.js'
import { waitFor } from '../helpers/wait.js'

let server: SseTestServer
const streams: EventStream[] = []

beforeEach(async () => {
  server = await startSseTestServer()
})

afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close()
  await server.close()
})

function open(...args: Parameters<typeof events>): EventStream {
  const stream = events(...args)
  streams.push(stream)
  return stream
}

async function collect(stream: AsyncIterable<ParsedEvent>, max = Infinity): Promise<ParsedEvent[]> {
  const out: ParsedEvent[] = []
  for await (const event of stream) {
    out.push(event)
    if (out.length >= max) break
  }
  return out
}

describe('events: the async iterator', () => {
  it('yields the events, then ends when the server ends with reconnect: false', async () => {
    const got = await collect(open({ url: `${server.url}/mixed`, reconnect: false }))
    expect(got).toEqual(mixedEvents)
  })

  it('follows reconnections; break closes the stream', async () => {
    const stream = open({ url: `${server.url}/counter` })
    const got = await collect(stream, 7)
    expect(got.map((e) => e.lastEventId)).toEqual(['1', '2', '3', '4', '5', '6', '7'])
    expect(stream.state).toBe('closed')
    expect(stream.lastEventId).toBe('7')
    await expect(stream.next()).resolves.toEqual({ done: true, value: undefined })
  })

  it('throws the ResponseError of a 500, after no events', async () => {
    const stream = open({ url: `${server.url}/status/500` })
    const error: unknown = await collect(stream).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(ResponseError)
    expect(error).toMatchObject({ status: 500, code: 'ERR_SSE_BAD_RESPONSE' })
    await expect(stream.next()).resolves.toEqual({ done: true, value: undefined })
  })

  it('delivers the events received before a failure, then throws', async () => {
    const got: string[] = []
    const error: unknown = await (async () => {
      for await (const event of open({ url: `${server.url}/drop`, reconnect: false })) {
        got.push(event.data)
      }
    })().catch((e: unknown) => e)
    expect(got).toEqual(['hit 1'])
    expect(error).toMatchObject({ code: 'ERR_SSE_CONNECTION_FAILED' })
  })

  it('ends quietly on a 204 and on abort', async () => {
    expect(await collect(open({ url: `${server.url}/status/204` }))).toEqual([])
    const controller = new AbortController()
    const stream = open({ url: `${server.url}/silent`, signal: controller.signal })
    const first = await stream.next()
    expect(first).toEqual({
      done: false,
      value: { type: 'message', data: 'hit 1', lastEventId: '1' },
    })
    const pending = stream.next()
    controller.abort()
    await expect(pending).resolves.toEqual({ done: true, value: undefined })
  })

  it('serves concurrent next() calls in order', async () => {
    const stream = open({ url: `${server.url}/counter?count=3`, reconnect: false })
    const results = await Promise.all([stream.next(), stream.next(), stream.next(), stream.next()])
    expect(results.map((r) => (r.done === true ? 'done' : r.value.data))).toEqual([
      '1',
      '2',
      '3',
      'done',
    ])
  })

  it('stops reading while maxBufferedEvents wait for the consumer (backpressure)', async () => {
    // An endless body that makes one event per pull: without backpressure the client would pull
    // without end.
    let pulls = 0
    const encoder = new TextEncoder()
    const body = new ReadableStream<Uint8Array>(
      {
        pull(controller) {
          pulls++
          controller.enqueue(encoder.encode(`id: ${pulls}\ndata: ${pulls}\n\n`))
        },
      },
      { highWaterMark: 0 },
    )
    const stream = open({
      url: 'https://example.test/endless',
      maxBufferedEvents: 5,
      fetch: () =>
        Promise.resolve(new Response(body, { headers: { 'content-type': 'text/event-stream' } })),
    })
    await waitFor(() => pulls >= 5, 'the buffer to fill')
    // Let the event loop run many turns: a client without backpressure would keep pulling.
    for (let i = 0; i < 50; i++) await new Promise((resolve) => setImmediate(resolve))
    expect(pulls).toBeLessThanOrEqual(6)
    const got = await collect(stream, 20)
    expect(got.map((e) => e.data)).toEqual(Array.from({ length: 20 }, (_, i) => String(i + 1)))
    expect(pulls).toBeLessThanOrEqual(26)
  })

  it('keeps every event, in order, with a slow consumer', async () => {
    const stream = open({
      url: `${server.url}/many?count=300`,
      reconnect: false,
      maxBufferedEvents: 3,
    })
    const ids: string[] = []
    for await (const event of stream) {
      ids.push(event.lastEventId)
      if (ids.length % 50 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    expect(ids).toEqual(Array.from({ length: 300 }, (_, i) => String(i + 1)))
  })

  it('rejects a bad maxBufferedEvents', () => {
    expect(() => events({ url: server.url, maxBufferedEvents: 0 })).toThrow(
      'Expected `maxBufferedEvents` to be a positive integer, got `0` (number)',
    )
  })
})
