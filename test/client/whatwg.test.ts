import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import { utf8HeaderValue } from '../../src/client/client.js'
import {
  EventSource,
  ResponseError,
  events,
  type EventSourceErrorEvent,
} from '../../src/client/index.js'
import type { ParsedEvent } from '../../src/wire/parse.js'
import { waitFor } from '../helpers/wait.js'
import { startWptServer, type WptServer } from '../helpers/wpt-server.js'
import { track, type Tracked } from './track.js'

/**
 * The WHATWG processing model where the client once departed from it, on the vectors of the WPT
 * `eventsource/` tests (request-status-error, last-event-id, format-field-id-*): only a 200 opens
 * a stream, every other status fails the connection, `Last-Event-ID` carries the id's UTF-8 bytes.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#sse-processing-model
 */
let server: WptServer
const cleanups: (() => void)[] = []

beforeEach(async () => {
  server = await startWptServer()
})

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) cleanup()
  await server.close()
})

/** An EventSource with every event recorded as `type readyState [data lastEventId]`. */
function source(path: string): {
  source: EventSource
  log: string[]
  errors: (Error | undefined)[]
} {
  const es = new EventSource(`${server.url}${path}`, { retryMs: 20 })
  cleanups.push(() => es.close())
  const log: string[] = []
  const errors: (Error | undefined)[] = []
  es.onopen = () => log.push(`open ${es.readyState}`)
  es.onmessage = (e) => log.push(`message ${es.readyState} ${e.data as string} ${e.lastEventId}`)
  es.addEventListener('error', (e) => {
    log.push(`error ${es.readyState}`)
    errors.push(e.error)
  })
  return { source: es, log, errors }
}

function connection(...args: Parameters<typeof track>): Tracked {
  const tracked = track(...args)
  cleanups.push(() => tracked.connection.close())
  return tracked
}

async function collect(url: string): Promise<{ got: ParsedEvent[]; error: unknown }> {
  const got: ParsedEvent[] = []
  const stream = events({ url, reconnect: { retryMs: 1 } })
  cleanups.push(() => stream.close())
  try {
    for await (const event of stream) got.push(event)
    return { got, error: undefined }
  } catch (error) {
    return { got, error }
  }
}

// request-status-error.any.js's statuses, and 3xx answers that are not redirects.
const failing = [205, 210, 299, 300, 304, 404, 410, 503]

describe('status codes: only 200 opens a stream', () => {
  for (const status of failing) {
    it(`${status}: every shape fails the connection once, without reconnecting`, async () => {
      const path = `/status-error?status=${status}`
      const es = source(path)
      await waitFor(() => es.source.readyState === EventSource.CLOSED, 'CLOSED')
      expect(es.log).toEqual(['error 2'])
      expect(es.errors[0]).toBeInstanceOf(ResponseError)
      expect(es.errors[0]).toMatchObject({ status, code: 'ERR_SSE_BAD_RESPONSE' })

      const t = connection({ url: `${server.url}${path}`, reconnect: { retryMs: 1 } })
      await waitFor(() => t.ended(), 'the failure')
      expect(t.log).toHaveLength(1)
      expect(t.log[0]).toMatch(new RegExp(`^failure server answered ${status}\\b`))

      const { got, error } = await collect(`${server.url}${path}`)
      expect(got).toEqual([])
      expect(error).toMatchObject({ status, code: 'ERR_SSE_BAD_RESPONSE' })
      // One request per shape: none reconnected.
      expect(server.hits('/status-error')).toHaveLength(3)
    })
  }

  it('204: EventSource fails the connection (error, CLOSED); connect() and events() end quietly', async () => {
    const es = source('/status-error?status=204')
    await waitFor(() => es.source.readyState === EventSource.CLOSED, 'CLOSED')
    expect(es.log).toEqual(['error 2'])
    expect(es.errors).toEqual([undefined])
    const t = connection({ url: `${server.url}/status-error?status=204` })
    await waitFor(() => t.ended(), 'the end')
    expect(t.log).toEqual(['closed no-content'])
    expect(await collect(`${server.url}/status-error?status=204`)).toEqual({
      got: [],
      error: undefined,
    })
    expect(server.hits('/status-error')).toHaveLength(3)
  })

  it('redirects are followed: a 200 after a 301, 302, 303, 307 or 308 opens', async () => {
    for (const status of [301, 302, 303, 307, 308]) {
      const es = source(`/redirect?status=${status}&to=/last-event-id`)
      await waitFor(() => es.log.length >= 2, `the first message after a ${status}`)
      es.source.close()
      expect(es.log.slice(0, 2), String(status)).toEqual(['open 1', 'message 1 hello \u2026'])
    }
  })

  it('acceptAny2xx: true lets connect() and events() open on another 2xx; 204 still stops', async () => {
    const t = connection({
      url: `${server.url}/status-error?status=299`,
      reconnect: false,
      acceptAny2xx: true,
    })
    await waitFor(() => t.ended(), 'the end')
    expect(t.log).toEqual(['open 299', 'event data', 'closed end'])
    const stopped = connection({ url: `${server.url}/status-error?status=204`, acceptAny2xx: true })
    await waitFor(() => stopped.ended(), 'the end')
    expect(stopped.log).toEqual(['closed no-content'])
  })
})

describe('Last-Event-ID: the id as UTF-8 bytes, as browsers send it', () => {
  it('encodes each character as its UTF-8 bytes, one Latin-1 character per byte', () => {
    expect(utf8HeaderValue('')).toBe('')
    expect(utf8HeaderValue('k3x9q2lm-41')).toBe('k3x9q2lm-41')
    // Latin-1 characters too: a browser sends `é` as two bytes, not as the byte 0xE9.
    expect(utf8HeaderValue('é')).toBe('\xc3\xa9')
    expect(utf8HeaderValue('\u2026')).toBe('\xe2\x80\xa6')
    expect(utf8HeaderValue('😀')).toBe('\xf0\x9f\x98\x80')
    // A lone surrogate cannot be UTF-8: U+FFFD, as TextEncoder (and browsers) do.
    expect(utf8HeaderValue('\ud800')).toBe('\xef\xbf\xbd')
  })

  it('EventSource: an id beyond Latin-1 (…) is sent back on reconnection (WPT last-event-id)', async () => {
    const { source: es, log } = source('/last-event-id')
    await waitFor(() => log.length >= 4, 'the reconnection')
    es.close()
    expect(log.slice(0, 4)).toEqual(['open 1', 'message 1 hello \u2026', 'error 0', 'open 1'])
    await waitFor(() => log.length >= 5, 'the echo')
    expect(log[4]).toBe('message 1 \u2026 \u2026')
    expect(server.hits('/last-event-id').map((r) => r.lastEventIdHex)).toEqual([
      undefined,
      'e280a6',
    ])
  })

  it('connect() and events(): astral and Latin-1 ids, and the lastEventId option', async () => {
    const t = connection({ url: `${server.url}/last-event-id?idvalue=${encodeURIComponent('😀')}` })
    await waitFor(() => t.events.length >= 2, 'the echo')
    t.connection.close()
    expect(t.events.slice(0, 2)).toEqual([
      { type: 'message', data: 'hello', lastEventId: '😀' },
      { type: 'message', data: '😀', lastEventId: '😀' },
    ])
    const stream = events({ url: `${server.url}/last-event-id`, lastEventId: 'é\u2026' })
    cleanups.push(() => stream.close())
    expect((await stream.next()).value).toEqual({
      type: 'message',
      data: 'é\u2026',
      lastEventId: 'é\u2026',
    })
    expect(server.hits('/last-event-id').map((r) => r.lastEventIdHex)).toEqual([
      undefined,
      'f09f9880',
      'c3a9e280a6',
    ])
  })

  it('an id with NUL is ignored: the last event id stays empty, no Last-Event-ID is sent', async () => {
    const { source: es, log } = source(`/last-event-id?idvalue=${encodeURIComponent('x\0y')}`)
    await waitFor(() => log.length >= 4, 'the reconnection')
    es.close()
    expect(log.slice(0, 4)).toEqual(['open 1', 'message 1 hello ', 'error 0', 'open 1'])
    expect(server.hits('/last-event-id')[1]!.lastEventIdHex).toBeUndefined()
  })
})

describe('EventSource error events', () => {
  it('carry the ResponseError of the answer that failed the connection', async () => {
    const es = source('/status-error?status=503')
    const errors: EventSourceErrorEvent[] = []
    es.source.addEventListener('error', (e) => errors.push(e))
    await waitFor(() => errors.length === 1, 'the error event')
    expect(errors[0]!.message).toBe(
      `server answered 503 Service Unavailable for ${server.url}/status-error`,
    )
    expect(errors[0]!.error).toMatchObject({ status: 503, body: 'data: data\n\n' })
  })
})
