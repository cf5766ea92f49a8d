import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import type { EventSourceErrorEvent } from '../../src/client/index.js'
import { EventSource, ResponseError } from '../../src/client/index.js'
import { startSseTestServer, type SseTestServer } from '../helpers/sse-test-server.js'
import { waitFor } from '../helpers/wait.js'

let server: SseTestServer
const sources: EventSource[] = []

beforeEach(async () => {
  server = await startSseTestServer()
})

afterEach(async () => {
  for (const source of sources.splice(0)) source.close()
  await server.close()
})

/** An EventSource with every event recorded as `type readyState [data]`. */
function open(path: string, types: string[] = []): { source: EventSource; log: string[] } {
  const source = new EventSource(`${server.url}${path}`, { retryMs: 20 })
  sources.push(source)
  const log: string[] = []
  source.onopen = () => log.push(`open ${source.readyState}`)
  source.onmessage = (event) => log.push(`message ${event.data as string} ${event.lastEventId}`)
  source.onerror = () => log.push(`error ${source.readyState}`)
  for (const type of types) {
    source.addEventListener(type, (event) => log.push(`${type} ${event.data as string}`))
  }
  return { source, log }
}

describe('EventSource', () => {
  it('has the constants, url and withCredentials of the browser API', () => {
    const source = new EventSource(`${server.url}/counter`, { withCredentials: true })
    sources.push(source)
    expect([EventSource.CONNECTING, EventSource.OPEN, EventSource.CLOSED]).toEqual([0, 1, 2])
    expect([source.CONNECTING, source.OPEN, source.CLOSED]).toEqual([0, 1, 2])
    expect(source.url).toBe(`${server.url}/counter`)
    expect(source.withCredentials).toBe(true)
    expect(source.readyState).toBe(EventSource.CONNECTING)
    expect(source).toBeInstanceOf(EventTarget)
    expect(() => new EventSource('http://[bad')).toThrow(
      expect.objectContaining({ name: 'SyntaxError' }) as Error,
    )
  })

  it('opens, dispatches MessageEvents, and reconnects after the end with an error event', async () => {
    const { source, log } = open('/counter?count=2')
    const messages: MessageEvent[] = []
    source.addEventListener('message', (event) => messages.push(event))
    await waitFor(() => messages.length >= 4, 'four messages')
    source.close()
    expect(log.slice(0, 7)).toEqual([
      'open 1',
      'message 1 1',
      'message 2 2',
      'error 0',
      'open 1',
      'message 3 3',
      'message 4 4',
    ])
    expect(messages[0]).toBeInstanceOf(MessageEvent)
    expect(messages[0]!.origin).toBe(server.url)
    expect(server.hits('/counter')[1]!.headers['last-event-id']).toBe('2')
    expect(source.readyState).toBe(EventSource.CLOSED)
  })

  it('dispatches named events to addEventListener only', async () => {
    const { source, log } = open('/mixed', ['add'])
    await waitFor(
      () => log.includes('add 73857293') && log.some((l) => l.startsWith('error')),
      'the add event',
    )
    source.close()
    expect(log.filter((l) => l.includes('73857293'))).toEqual(['add 73857293'])
  })

  for (const [path, status] of [
    ['/status/500', 500],
    ['/status/204', 204],
    ['/status/201?sse=1', 201],
    ['/wrong-type', 200],
  ] as const) {
    it(`fails the connection on ${path}: an error event, CLOSED, no reconnection`, async () => {
      const { source, log } = open(path)
      const errors: EventSourceErrorEvent[] = []
      source.addEventListener('error', (event) => errors.push(event))
      await waitFor(() => source.readyState === EventSource.CLOSED, 'CLOSED')
      expect(log).toEqual(['error 2'])
      expect(errors).toHaveLength(1)
      if (status === 204) expect(errors[0]!.error).toBeUndefined()
      else {
        expect(errors[0]!.error).toBeInstanceOf(ResponseError)
        expect(errors[0]!.error).toMatchObject({ status })
      }
      expect(server.hits(path.split('?')[0]!)).toHaveLength(1)
    })
  }

  it('reconnects after a network error with readyState CONNECTING and an error event', async () => {
    const { source, log } = open('/drop')
    await waitFor(() => log.filter((l) => l.startsWith('open')).length >= 2, 'a reconnection')
    source.close()
    expect(log.slice(0, 4)).toEqual(['open 1', 'message hit 1 1', 'error 0', 'open 1'])
  })

  it('close() is silent and final', async () => {
    const { source, log } = open('/silent')
    await waitFor(() => log.length >= 2, 'the first message')
    source.close()
    expect(source.readyState).toBe(EventSource.CLOSED)
    expect(log).toEqual(['open 1', 'message hit 1 1'])
  })
})
