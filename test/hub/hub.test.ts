import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  HUB_DEFAULTS,
  MemoryBroker,
  createHub,
  type Broker,
  type EventMap,
  type Hub,
  type HubOptions,
} from '../../src/index.js'
import { resolveHubOptions } from '../../src/hub/hub-options.js'
import { waitFor } from '../helpers/wait.js'

type Events = { progress: { pct: number }; welcome: { user: string }; token: string }

const hubs: Hub<EventMap>[] = []
function makeHub<E extends EventMap = Events>(
  options: Parameters<typeof createHub>[0] = {},
): Hub<E> {
  const hub = createHub<E>({ heartbeatMs: null, epoch: 'e1', ...options })
  hubs.push(hub as unknown as Hub<EventMap>)
  return hub
}

afterEach(async () => {
  vi.useRealTimers()
  for (const hub of hubs.splice(0)) await hub.close()
})

/** Reads a Web Response body as text as it arrives. */
function reader(response: Response): { text(): string; done: Promise<void> } {
  let text = ''
  const decoder = new TextDecoder()
  const body = response.body!.getReader()
  const done = (async () => {
    for (;;) {
      const { value, done } = await body.read()
      if (done) return
      text += decoder.decode(value, { stream: true })
    }
  })()
  return { text: () => text, done }
}

describe('subscribeWeb (fetch-style frameworks)', () => {
  it('streams a Response with the stream headers and exact bytes', async () => {
    const hub = makeHub()
    const { connection, response } = hub.subscribeWeb(
      new Request('http://x/events?topic=a&clientId=u1'),
    )
    const res = await response
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/event-stream')
    expect(res.headers.get('cache-control')).toBe('no-cache, no-transform')
    expect(res.headers.get('connection')).toBeNull()
    const body = reader(res)
    expect(connection.clientId).toBe('u1')
    await hub.publish({ topic: 'a', event: 'progress', data: { pct: 1 } })
    await waitFor(() => body.text().endsWith('\n\n') && body.text().includes('pct'), 'event')
    expect(body.text()).toBe(
      'retry: 2000\n\nid: e1-0\n\nevent: progress\nid: e1-1\ndata: {"pct":1}\n\n',
    )
    connection.close()
    await body.done
  })

  it('answers 400 as a JSON Response for bad params, and 204 for a finished topic', async () => {
    const hub = makeHub()
    const bad = await hub.subscribeWeb(new Request('http://x/events')).response
    expect(bad.status).toBe(400)
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe(
      'ERR_SSE_BAD_REQUEST',
    )
    await hub.publish({ topic: 'done', data: 'end', close: true })
    const ended = await hub.subscribeWeb(
      new Request('http://x/events?topic=done', { headers: { 'last-event-id': 'e1-1' } }),
    ).response
    expect(ended.status).toBe(204)
  })

  it('forgets a connection whose body the client cancelled', async () => {
    const hub = makeHub()
    const { response } = hub.subscribeWeb(new Request('http://x/events?topic=a'))
    const res = await response
    await waitFor(() => hub.stats().connections === 1, 'open')
    await res.body!.cancel()
    expect(hub.stats().connections).toBe(0)
    expect(hub.stats().closed['client-gone']).toBe(1)
  })
})

describe('Connection', () => {
  it('keeps events sent before the stream opened, in order, after the replay (the welcome event)', async () => {
    const hub = makeHub()
    await hub.publish({ topic: 'a', data: 'missed' })
    const { connection, response } = hub.subscribeWeb(
      new Request('http://x/?topic=a&lastEventId=e1-0'),
    )
    expect(connection.state).toBe('opening')
    expect(connection.send('welcome', { user: 'ada' })).toBe(true)
    expect(connection.send({ event: 'progress', data: { pct: 0 } })).toBe(true)
    const body = reader(await response)
    await waitFor(() => body.text().includes('pct'), 'early events')
    expect(body.text()).toBe(
      'retry: 2000\n\nid: e1-1\ndata: missed\n\nid: e1-1\n\nevent: welcome\ndata: {"user":"ada"}\n\nevent: progress\ndata: {"pct":0}\n\n',
    )
    connection.close()
  })

  it('type-checks publishes against the event map', () => {
    const hub = makeHub()
    void hub.publish({ topic: 'a', event: 'progress', data: { pct: 1 } }).catch(() => {})
    // @ts-expect-error: a wrong payload for the event does not compile
    void hub.publish({ topic: 'a', event: 'progress', data: { pct: 'x' } }).catch(() => {})
    // @ts-expect-error: an event missing from the map does not compile
    void hub.publish({ topic: 'a', event: 'nope', data: 1 }).catch(() => {})
  })

  it('type-checks payloads against the event map', () => {
    const hub = makeHub()
    const { connection } = hub.subscribeWeb(new Request('http://x/?topic=a'))
    connection.send('progress', { pct: 50 })
    // @ts-expect-error: a wrong payload type does not compile
    connection.send('progress', { pct: 'half' })
    // @ts-expect-error: an unknown event does not compile
    connection.send('nope', 1)
    connection.close()
  })

  it('reports false, never throws, when sending on a closed connection', async () => {
    const hub = makeHub()
    const { connection, response } = hub.subscribeWeb(new Request('http://x/?topic=a'))
    await response
    connection.close()
    expect(connection.state).toBe('closed')
    expect(connection.closeReason).toBe('server-close')
    expect(connection.send('token', 'x')).toBe(false)
    expect(connection.comment('hi')).toBe(false)
  })

  it('rejects CR/LF in event names and ids, and keeps comments on comment lines', async () => {
    const hub = makeHub()
    const { connection, response } = hub.subscribeWeb(new Request('http://x/?topic=a'))
    const body = reader(await response)
    expect(() => connection.send({ event: 'token' as const, data: 'x', id: 'a\nb' })).toThrow(/id/)
    expect(() => connection.send('bad\nname' as 'token', 'x')).toThrow(/event name/)
    connection.comment('one\ndata: injected')
    await waitFor(() => body.text().includes('injected'), 'comment')
    expect(body.text()).toContain(': one\n: data: injected\n\n')
    connection.close()
  })

  it('pipes an async iterable into a connection, and a generator into a finite topic', async () => {
    const hub = makeHub()
    const { connection, response } = hub.subscribeWeb(new Request('http://x/?topic=answer'))
    const body = reader(await response)
    async function* tokens(): AsyncGenerator<string> {
      yield 'Hel'
      yield 'lo'
    }
    expect(await connection.pipe(tokens(), 'token')).toBe(2)
    const ids = await hub.pipe({ topic: 'answer' }, tokens(), {
      event: 'token',
      close: { event: 'done', data: '' },
    })
    expect(ids).toEqual(['e1-1', 'e1-2', 'e1-3'])
    await body.done
    expect(body.text()).toBe(
      'retry: 2000\n\nid: e1-0\n\nevent: token\ndata: Hel\n\nevent: token\ndata: lo\n\n' +
        'event: token\nid: e1-1\ndata: Hel\n\nevent: token\nid: e1-2\ndata: lo\n\nevent: done\nid: e1-3\ndata: \n\n',
    )
  })
})

describe('pipe from streams', () => {
  it('pipes a Node Readable and a Web ReadableStream into a topic, one event per chunk', async () => {
    const { Readable } = await import('node:stream')
    const hub = makeHub()
    const { connection, response } = hub.subscribeWeb(new Request('http://x/?topic=log'))
    const body = reader(await response)
    await hub.pipe(
      { topic: 'log' },
      Readable.from([Buffer.from('line 1'), Buffer.from('line 2')]),
      { event: 'line' },
    )
    const web = new ReadableStream<string>({
      start(controller) {
        controller.enqueue('web 1')
        controller.close()
      },
    })
    await hub.pipe({ topic: 'log' }, web, { event: 'line' })
    await waitFor(() => body.text().includes('web 1'), 'piped events')
    expect(body.text()).toBe(
      'retry: 2000\n\nid: e1-0\n\nevent: line\nid: e1-1\ndata: line 1\n\nevent: line\nid: e1-2\ndata: line 2\n\nevent: line\nid: e1-3\ndata: web 1\n\n',
    )
    connection.close()
  })
})

describe('heartbeats', () => {
  it('come from one timer and skip connections written to recently', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] })
    const hub = makeHub({ heartbeatMs: 1000 })
    const a = hub.subscribeWeb(new Request('http://x/?topic=a'))
    const b = hub.subscribeWeb(new Request('http://x/?topic=b'))
    const bodyA = reader(await a.response)
    const bodyB = reader(await b.response)
    await waitFor(() => bodyA.text().includes('id:') && bodyB.text().includes('id:'), 'open')
    vi.advanceTimersByTime(400)
    await hub.publish({ topic: 'a', data: 'busy' })
    vi.advanceTimersByTime(100) // t=500: b idle 500 ms -> heartbeat; a written 100 ms ago -> skipped
    await waitFor(() => bodyB.text().endsWith(':\n\n'), 'heartbeat on b')
    await waitFor(() => bodyA.text().includes('busy'), 'event on a')
    expect(bodyA.text()).not.toContain(':\n\n')
    vi.advanceTimersByTime(500) // t=1000: a idle 600 ms -> heartbeat
    await waitFor(() => bodyA.text().endsWith(':\n\n'), 'heartbeat on a')
  })
})

describe('options', () => {
  it('validates options up front with messages that name the option', () => {
    expect(() => createHub({ heartbeatMs: -1 })).toThrow(
      /`heartbeatMs` to be a positive integer or null, got `-1`/,
    )
    expect(() => createHub({ maxQueuedBytes: 0 })).toThrow(/maxQueuedBytes/)
    expect(() => createHub({ overflow: 'drop' as 'evict' })).toThrow(/overflow/)
    expect(() => createHub({ historyMaxEvents: 1.5 })).toThrow(/historyMaxEvents/)
  })

  it('resolves every default from HUB_DEFAULTS and names each bad option', () => {
    expect(Object.isFrozen(HUB_DEFAULTS)).toBe(true)
    expect(resolveHubOptions()).toEqual(HUB_DEFAULTS)
    expect(resolveHubOptions({ heartbeatMs: null, retryMs: 0, overflow: 'evict' })).toMatchObject({
      heartbeatMs: null,
      retryMs: 0,
      overflow: 'evict',
    })
    const bad: [keyof typeof HUB_DEFAULTS, unknown][] = [
      ['heartbeatMs', 0],
      ['retryMs', -1],
      ['maxConnectionAgeMs', 1.5],
      ['maxQueuedBytes', null],
      ['maxPendingEvents', '10'],
      ['maxConnections', 0],
      ['maxConnectionsPerClient', -5],
      ['maxConnectionsPerIp', Infinity],
      ['maxTopicsPerConnection', 0],
      ['maxTopicsPerPublish', 0],
      ['overflow', 'drop'],
      ['maxTopicLength', 0],
      ['maxClientIdLength', 0],
      ['maxEventNameLength', 0],
    ]
    for (const [name, value] of bad) {
      expect(() => createHub({ [name]: value }), name).toThrow(
        new RegExp(`^Expected \`${name}\` to be `),
      )
    }
    expect(() => createHub({ endedTopicTtlMs: 0 })).toThrow(/`endedTopicTtlMs`/)
    expect(() => createHub({ broker: {} as Broker })).toThrow(/`broker` to be a Broker/)
    // Unknown keys pass: the server's options extend the hub's.
    expect(() => resolveHubOptions({ port: 1 } as HubOptions)).not.toThrow()
  })

  it('refuses publishes with a clear error code for programmatic callers', async () => {
    const hub = makeHub()
    await expect(hub.publish({ data: 'x' })).rejects.toMatchObject({
      code: 'ERR_SSE_BAD_REQUEST',
      status: 400,
    })
    // The event map types names and payloads; a cast gets a bad name past the compiler, not the hub.
    await expect(
      hub.publish({ topic: 'a', data: 'x', event: 'a\rb' as 'token' }),
    ).rejects.toMatchObject({
      code: 'ERR_SSE_INVALID_FIELD',
    })
  })
})

describe('publishNow (synchronous brokers)', () => {
  it('publishes in the calling tick, with the id and the connections reached', async () => {
    const hub = makeHub()
    await hub.ready
    const { connection, response } = hub.subscribeWeb(new Request('http://x/events?clientId=u1'))
    const body = reader(await response)
    await waitFor(() => body.text().includes('id: e1-0'), 'the id-only frame')
    // Two publishes back to back, nothing awaited in between: each result is its own.
    const first = hub.publishNow({ clientId: 'u1', event: 'token', data: 'a' })
    const second = hub.publishNow({ topic: 'nobody', data: 'b' })
    expect(first).toEqual({ id: 'e1-1', localConnections: 1 })
    expect(second).toEqual({ id: 'e1-2', localConnections: 0 })
    await waitFor(() => body.text().endsWith('data: a\n\n'), 'the event')
    expect(body.text()).toBe('retry: 2000\n\nid: e1-0\n\nevent: token\nid: e1-1\ndata: a\n\n')
    // The async path numbers in the same sequence and counts the same way.
    await expect(hub.publish({ clientId: 'u1', data: 'c' })).resolves.toEqual({
      id: 'e1-3',
      localConnections: 1,
    })
    connection.close()
    await body.done
  })

  it('throws what publish would reject with: a bad input, a closed hub', async () => {
    const hub = makeHub()
    await hub.ready
    expect(() => hub.publishNow({ data: 'x' })).toThrow(
      expect.objectContaining({ code: 'ERR_SSE_BAD_REQUEST', status: 400 }),
    )
    expect(() => hub.publishNow({ topic: 'a', data: 'x', event: 'a\nb' as 'token' })).toThrow(
      expect.objectContaining({ code: 'ERR_SSE_INVALID_FIELD' }),
    )
    await hub.close()
    expect(() => hub.publishNow({ topic: 'a', data: 'x' })).toThrow(
      expect.objectContaining({ code: 'ERR_SSE_CLOSED', status: 503 }),
    )
  })
})

describe('Last-Event-ID', () => {
  it('lets a non-empty header win over the query, and counts an empty one as absent', async () => {
    const hub = makeHub()
    await hub.publish({ topic: 'a', data: 'one' })
    await hub.publish({ topic: 'a', data: 'two' })
    const open = async (headers: Record<string, string>): Promise<string> => {
      const { connection, response } = hub.subscribeWeb(
        new Request('http://x/events?topic=a&lastEventId=e1-1', { headers }),
      )
      const body = reader(await response)
      await waitFor(() => body.text().includes('id: e1-2\n\n'), 'the id-only frame')
      connection.close()
      await body.done
      return body.text()
    }
    // The header says the client has everything: nothing is replayed.
    expect(await open({ 'last-event-id': 'e1-2' })).toBe('retry: 2000\n\nid: e1-2\n\n')
    // An empty header is no header: the query's id applies (not a reset for a bad id "").
    const replayed = 'retry: 2000\n\nid: e1-2\ndata: two\n\nid: e1-2\n\n'
    expect(await open({ 'last-event-id': '' })).toBe(replayed)
    expect(await open({})).toBe(replayed)
  })
})

describe('errors', () => {
  it('go to error listeners, or to stderr when there is none: never dropped', () => {
    const hub = makeHub()
    const log = vi.spyOn(console, 'error').mockImplementation(() => {})
    try {
      const lost = new Error('broker trouble')
      hub.reportError(lost)
      expect(log).toHaveBeenCalledTimes(1)
      expect(String(log.mock.calls[0]![0])).toMatch(/^\[ssehub\]/)
      expect(log.mock.calls[0]).toContain(lost)
      const heard: Error[] = []
      hub.on('error', (error) => heard.push(error))
      hub.reportError(new Error('heard'))
      expect(heard.map((error) => error.message)).toEqual(['heard'])
      expect(log).toHaveBeenCalledTimes(1)
    } finally {
      log.mockRestore()
    }
  })

  it('a broker that cannot resume: the stream is refused (503, Retry-After 2) and the error reported', async () => {
    const broker = new MemoryBroker({ epoch: 'e1' })
    broker.resume = () => Promise.reject(new Error('history down'))
    const hub = makeHub({ broker })
    const heard: Error[] = []
    hub.on('error', (error) => heard.push(error))
    const res = await hub.subscribeWeb(new Request('http://x/events?topic=a')).response
    expect(res.status).toBe(503)
    expect(res.headers.get('retry-after')).toBe('2')
    expect(await res.json()).toEqual({
      error: {
        code: 'ERR_SSE_BROKER_UNAVAILABLE',
        message: 'The history is unavailable right now; retry shortly.',
      },
    })
    expect(heard.map((error) => error.message)).toEqual(['history down'])
    expect(hub.stats().connections).toBe(0)
    await broker.close()
  })
})

describe('fan-out', () => {
  it('stays exact when a closed listener publishes in the middle of a fan-out', async () => {
    const hub = makeHub()
    await hub.ready
    // `finite` completes on the final event of `a`; `other` follows `a` and `d`, so it stays.
    const finite = hub.subscribeWeb(new Request('http://x/events?topic=a'))
    const other = hub.subscribeWeb(new Request('http://x/events?topic=a&topic=d'))
    const watcher = hub.subscribeWeb(new Request('http://x/events?topic=c'))
    const bodies = await Promise.all(
      [finite, other, watcher].map(async (s) => reader(await s.response)),
    )
    await waitFor(() => bodies.every((body) => body.text().includes('id: e1-0')), 'open')
    hub.on('closed', (connection) => {
      // Runs inside the fan-out of the final event: a nested, synchronous publish.
      if (connection.id === finite.connection.id) hub.publishNow({ topic: 'c', data: 'left' })
    })
    expect(hub.publishNow({ topic: 'a', data: 'end', close: true })).toEqual({
      id: 'e1-1',
      localConnections: 2,
    })
    await bodies[0]!.done
    await waitFor(
      () => bodies[1]!.text().includes('end') && bodies[2]!.text().includes('left'),
      'both events',
    )
    expect(bodies[1]!.text()).toBe('retry: 2000\n\nid: e1-0\n\nid: e1-1\ndata: end\n\n')
    expect(bodies[2]!.text()).toBe('retry: 2000\n\nid: e1-0\n\nid: e1-2\ndata: left\n\n')
    other.connection.close()
    watcher.connection.close()
  })
})
