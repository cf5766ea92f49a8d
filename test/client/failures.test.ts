import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { EventSource, events, type FetchLike, type ReconnectInfo } from '../../src/client/index.js'
import { startSseTestServer, type SseTestServer } from '../helpers/sse-test-server.js'
import { waitFor } from '../helpers/wait.js'
import { deadUrl, track, type Tracked } from './track.js'

/**
 * Failures are never silent: a broken `fetch` or a request fetch refuses fails at once (retrying
 * cannot fix a programming error); a network error is retried as the spec says, and every failed
 * attempt is reported with its cause and the next delay, up to `maxAttempts`.
 */
let server: SseTestServer
const cleanups: (() => void)[] = []

beforeEach(async () => {
  server = await startSseTestServer()
})

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  await server.close()
})

function start(...args: Parameters<typeof track>): Tracked {
  const tracked = track(...args)
  cleanups.push(() => tracked.connection.close())
  return tracked
}

const sse = (text: string): Response =>
  new Response(text, { headers: { 'content-type': 'text/event-stream' } })

describe('the injected fetch', () => {
  it('is called as a plain function, not as a method of the options (no `this`)', async () => {
    const thisValues: unknown[] = []
    // What window.fetch does: refuse any `this` but the window (here: anything but undefined).
    const strictFetch = function (this: unknown): Promise<Response> {
      thisValues.push(this)
      if (this !== undefined) return Promise.reject(new TypeError('Illegal invocation'))
      return Promise.resolve(sse('data: ok\n\n'))
    } as FetchLike
    const t = start({ url: 'https://example.test/', fetch: strictFetch, reconnect: false })
    await waitFor(() => t.ended(), 'the end')
    expect(t.log).toEqual(['open 200', 'event ok', 'closed end'])
    const es = new EventSource('https://example.test/', { fetch: strictFetch })
    cleanups.push(() => es.close())
    const data: unknown[] = []
    es.onmessage = (e) => data.push(e.data)
    await waitFor(() => data.length === 1, 'the message')
    expect(thisValues).toEqual([undefined, undefined])
  })

  it('a fetch that throws synchronously fails the stream at once, with no retry', async () => {
    let calls = 0
    const t = start({
      url: 'https://example.test/',
      reconnect: { retryMs: 1 },
      fetch: () => {
        calls++
        throw new TypeError('Illegal invocation')
      },
    })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.log).toEqual([
      'failure `fetch` threw instead of returning a promise: Illegal invocation',
    ])
    expect(t.failures[0]).toBeInstanceOf(TypeError)
    expect(calls).toBe(1)
  })

  it('a fetch that resolves with something other than a Response fails at once', async () => {
    const t = start({
      url: 'https://example.test/',
      reconnect: { retryMs: 1 },
      fetch: () => Promise.resolve(undefined as unknown as Response),
    })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.log).toEqual(['failure `fetch` resolved with `undefined` (undefined), not a Response'])
  })
})

describe('requests fetch refuses on every attempt', () => {
  it('a URL with credentials throws at construction, without the credentials in the message', () => {
    const url = 'http://ada:s3cret@127.0.0.1:1/events?token=t0k'
    for (const open of [() => start({ url }), () => events({ url }), () => new EventSource(url)]) {
      expect(open).toThrow(TypeError)
      expect(open).toThrow(/^The request to http:\/\/127\.0\.0\.1:1\/events cannot be made: /)
      expect(open).not.toThrow(/s3cret|t0k/)
      // Nor in a cause (loggers print causes).
      const error = (() => {
        try {
          open()
        } catch (e) {
          return e as Error
        }
      })()
      expect(error?.cause).toBeUndefined()
    }
  })

  it('a forbidden method throws at construction', () => {
    expect(() => start({ url: server.url, method: 'TRACE' })).toThrow(
      /^The request to http:\/\/127\.0\.0\.1:\d+\/ cannot be made: .*TRACE/,
    )
  })

  it('a header value fetch cannot send fails the stream before any request', async () => {
    const t = start({ url: `${server.url}/counter`, headers: { 'x-name': 'Ada \u2026' } })
    await waitFor(() => t.ended(), 'the failure')
    expect(t.failures[0]).toBeInstanceOf(TypeError)
    expect(t.failures[0]!.message).toMatch(/ByteString/)
    expect(server.hits('/counter')).toHaveLength(0)
  })
})

describe('network errors: retried, and reported on every attempt', () => {
  it('events(): onReconnecting gets each cause and delay; maxAttempts ends the loop with the last cause', async () => {
    const url = await deadUrl()
    const port = new URL(url).port
    const reports: ReconnectInfo[] = []
    const stream = events({
      url,
      reconnect: { retryMs: 5, jitter: false, maxAttempts: 2 },
      onReconnecting: (info) => reports.push(info),
    })
    cleanups.push(() => stream.close())
    const error: unknown = await stream.next().catch((e: unknown) => e)
    const refused = `Connection to http://127.0.0.1:${port}/gone failed: fetch failed (connect ECONNREFUSED 127.0.0.1:${port})`
    expect(reports.map((r) => [r.attempt, r.delayMs, r.error?.message])).toEqual([
      [1, 5, refused],
      [2, 10, refused],
    ])
    expect(error).toMatchObject({
      code: 'ERR_SSE_CONNECTION_FAILED',
      message: `Gave up on http://127.0.0.1:${port}/gone after 2 reconnection attempts: ${refused}. Raise maxAttempts (null: no limit) to keep trying.`,
    })
  })

  it('events(): an exception thrown by onReconnecting ends the loop with it', async () => {
    const stream = events({
      url: await deadUrl(),
      reconnect: { retryMs: 1 },
      onReconnecting: () => {
        throw new Error('stop here')
      },
    })
    cleanups.push(() => stream.close())
    await expect(stream.next()).rejects.toThrow('stop here')
    expect(() => events({ url: server.url, onReconnecting: 'no' as never })).toThrow(TypeError)
  })

  it('EventSource: each failed attempt is an error event (CONNECTING) whose error names the cause', async () => {
    const es = new EventSource(await deadUrl(), { retryMs: 5 })
    cleanups.push(() => es.close())
    const seen: string[] = []
    es.addEventListener('error', (e) => seen.push(`${es.readyState} ${e.error?.message ?? ''}`))
    await waitFor(() => seen.length >= 2, 'two failed attempts')
    es.close()
    for (const line of seen.slice(0, 2)) {
      expect(line).toMatch(/^0 Connection to .* failed: fetch failed \(connect ECONNREFUSED /)
    }
  })
})
