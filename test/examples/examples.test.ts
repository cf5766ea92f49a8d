import { createServer, get, type IncomingMessage, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { serve } from '@hono/node-server'
import { EventSource } from 'eventsource'
import { afterEach, describe, expect, it } from 'vitest'
import { createApp as createExpressApp } from '../../examples/express.js'
import { createApp as createFastifyApp } from '../../examples/fastify.js'
import { createApp as createHonoApp } from '../../examples/hono.js'
import { createApp as createNodeApp, type Events } from '../../examples/node-http.js'
import { createHub, type CloseReason, type Hub } from '../../src/index.js'
import { waitFor } from '../helpers/wait.js'

/** A fixed epoch makes the ids exact: `ex-0` before any publish, then `ex-1`, `ex-2`... */
const epoch = 'ex'

interface Running {
  readonly url: string
  close(): Promise<void>
}

interface Example {
  readonly name: string
  /** Starts the example's app on a free loopback port, the way its standalone part does on 3000. */
  start(hub: Hub<Events>): Promise<Running>
}

/** Listens on port 0. */
async function listen(server: Server): Promise<Running> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return running(server, (server.address() as AddressInfo).port)
}

/** Closing drops the idle keep-alive sockets too (the hub has ended the streams by then). */
function running(server: Server, port: number): Running {
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

const examples: readonly Example[] = [
  { name: 'node:http', start: (hub) => listen(createNodeApp(hub)) },
  { name: 'express', start: (hub) => listen(createServer(createExpressApp(hub))) },
  {
    name: 'fastify',
    async start(hub) {
      const app = createFastifyApp(hub)
      const url = await app.listen({ port: 0, host: '127.0.0.1' })
      return {
        url,
        async close() {
          const closing = app.close()
          // Fastify only drops idle sockets; undici may hold one open that never sent a request.
          app.server.closeAllConnections()
          await closing
        },
      }
    },
  },
  {
    name: 'hono',
    async start(hub) {
      // serve() is what the example runs standalone; it listens at once and reports the port.
      let server: Server | undefined
      const port = await new Promise<number>((resolve) => {
        server = serve(
          { fetch: createHonoApp(hub).fetch, port: 0, hostname: '127.0.0.1' },
          (info) => resolve(info.port),
        ) as Server
      })
      return running(server!, port)
    },
  },
]

// Run in reverse order after each test: clients first, then the hub (ends the streams), then servers.
const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

interface Started {
  readonly url: string
  readonly hub: Hub<Events>
  /** Close reasons reported by the hub's `closed` event, in order. */
  readonly closed: CloseReason[]
}

async function start(example: Example): Promise<Started> {
  // No heartbeats: a `:` comment in the middle would make the byte assertions flaky.
  const hub = createHub<Events>({ epoch, heartbeatMs: null })
  const closed: CloseReason[] = []
  hub.on('closed', (_connection, reason) => closed.push(reason))
  const running = await example.start(hub)
  cleanups.push(() => running.close())
  cleanups.push(() => hub.close())
  return { url: running.url, hub, closed }
}

/** One response read with node's `http.get`: the raw bytes as they arrived. */
interface RawResponse {
  readonly response: IncomingMessage
  text(): string
  ended(): boolean
  /** Waits until at least `length` characters arrived, then returns them all. */
  waitForLength(length: number): Promise<string>
}

function getRaw(url: string): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const request = get(url, { headers: { accept: 'text/event-stream' } }, (response) => {
      const chunks: Buffer[] = []
      let ended = false
      response.on('data', (chunk: Buffer) => chunks.push(chunk))
      response.on('end', () => (ended = true))
      // Decoded only when read: a multi-byte character split across chunks stays whole.
      const text = (): string => Buffer.concat(chunks).toString('utf8')
      resolve({
        response,
        text,
        ended: () => ended,
        waitForLength: async (length) => {
          await waitFor(
            () => text().length >= length,
            `${length} characters (have ${JSON.stringify(text())})`,
          )
          return text()
        },
      })
    })
    request.on('error', reject)
    cleanups.push(() => request.destroy())
  })
}

async function post(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  return { status: response.status, json: await response.json() }
}

interface Received {
  readonly type: string
  readonly data: string
  readonly lastEventId: string
}

/** An `eventsource` (v4) client recording the named events, closed after the test. */
function openEventSource(
  url: string,
  types: readonly string[],
): EventSource & { received: Received[] } {
  const source = Object.assign(new EventSource(url), { received: [] as Received[] })
  for (const type of types) {
    source.addEventListener(type, (event) =>
      source.received.push({ type, data: event.data, lastEventId: event.lastEventId }),
    )
  }
  cleanups.push(() => source.close())
  return source
}

/**
 * The welcome has no id field: the spec gives it the last id seen, the id-only frame's `ex-0`.
 * eventsource 4.1 reports an event's own id only (''); fixed upstream in EventSource/eventsource#358.
 */
const welcomeId = expect.stringMatching(/^(ex-0)?$/)

const opening = (user: string): string =>
  `retry: 2000\n\nid: ${epoch}-0\n\nevent: welcome\ndata: {"user":"${user}"}\n\n`

describe.each(examples)('examples/$name', (example) => {
  it('streams retry, the id-only frame, the welcome event, then published messages (exact bytes)', async () => {
    const { url } = await start(example)
    const lobby = await getRaw(`${url}/events?room=lobby&user=ada`)
    const other = await getRaw(`${url}/events?room=other`)
    expect(lobby.response.statusCode).toBe(200)
    expect(lobby.response.headers['content-type']).toBe('text/event-stream')
    expect(lobby.response.headers['cache-control']).toBe('no-cache, no-transform')
    expect(await lobby.waitForLength(opening('ada').length)).toBe(opening('ada'))
    expect(await other.waitForLength(opening('anonymous').length)).toBe(opening('anonymous'))

    expect(await post(`${url}/say`, { room: 'lobby', text: 'hi' })).toEqual({
      status: 202,
      json: { id: `${epoch}-1`, localConnections: 1 },
    })
    const lobbyAll = `${opening('ada')}event: message\nid: ${epoch}-1\ndata: {"text":"hi"}\n\n`
    expect(await lobby.waitForLength(lobbyAll.length)).toBe(lobbyAll)

    // The room `other` got nothing from `lobby`: its next bytes are its own message.
    await post(`${url}/say`, { room: 'other', text: 'ça va ✓' })
    const otherAll = `${opening('anonymous')}event: message\nid: ${epoch}-2\ndata: {"text":"ça va ✓"}\n\n`
    expect(await other.waitForLength(otherAll.length)).toBe(otherAll)
    expect(lobby.text()).toBe(lobbyAll)
  })

  it('delivers the welcome then the published message to an independent client (eventsource)', async () => {
    const { url } = await start(example)
    const source = openEventSource(`${url}/events?room=lobby&user=ada`, ['welcome', 'message'])
    await waitFor(() => source.received.length === 1, 'the welcome event')
    await post(`${url}/say`, { room: 'lobby', text: 'hi' })
    await waitFor(() => source.received.length === 2, 'the message event')
    expect(source.received).toEqual([
      { type: 'welcome', data: '{"user":"ada"}', lastEventId: welcomeId },
      { type: 'message', data: '{"text":"hi"}', lastEventId: `${epoch}-1` },
    ])
  })

  it('forgets a client that leaves', async () => {
    const { url, hub, closed } = await start(example)
    const source = openEventSource(`${url}/events?room=lobby&user=ada`, ['welcome'])
    await waitFor(() => source.received.length === 1, 'the welcome event')
    expect(hub.subscriberCount('lobby')).toBe(1)
    source.close()
    await waitFor(() => closed.length === 1, 'the closed event')
    expect(closed).toEqual(['client-gone'])
    expect(hub.stats().connections).toBe(0)
  })

  it("answers a reserved room with the hub's 400 JSON, on both routes", async () => {
    const { url } = await start(example)
    const refused = await getRaw(`${url}/events?room=%40admin`)
    await waitFor(() => refused.ended(), 'the 400 answer to end')
    expect(refused.response.statusCode).toBe(400)
    expect(JSON.parse(refused.text())).toMatchObject({ error: { code: 'ERR_SSE_BAD_REQUEST' } })

    const publish = await post(`${url}/say`, { room: '@admin', text: 'hi' })
    expect(publish.status).toBe(400)
    expect(publish.json).toMatchObject({ error: { code: 'ERR_SSE_BAD_REQUEST' } })
    // A malformed body is the framework's 400 (Fastify answers in its own shape).
    expect((await post(`${url}/say`, { room: 'lobby' })).status).toBe(400)
  })
})

describe('examples/hono token stream', () => {
  const hono = examples.find((example) => example.name === 'hono')!
  const tokens = ['You', ' said:', ' hello', ' there']

  it('pipes the tokens into the room, then `done` ends the stream (exact bytes)', async () => {
    const { url, closed } = await start(hono)
    const stream = await getRaw(`${url}/events?room=answer-1`)
    await stream.waitForLength(opening('anonymous').length)

    const ids = [1, 2, 3, 4, 5].map((n) => `${epoch}-${n}`)
    expect(await post(`${url}/ask`, { room: 'answer-1', prompt: 'hello there' })).toEqual({
      status: 200,
      json: { ids },
    })
    const frames = tokens.map((token, i) => `event: token\nid: ${ids[i]}\ndata: ${token}\n\n`)
    const all = `${opening('anonymous')}${frames.join('')}event: done\nid: ${epoch}-5\ndata: \n\n`
    await waitFor(() => stream.ended(), 'the stream to end after `done`')
    expect(stream.text()).toBe(all)
    expect(closed).toEqual(['completed'])
  })

  it('an EventSource gets every token and `done`, then stops for good (204 on reconnect)', async () => {
    const { url } = await start(hono)
    const source = openEventSource(`${url}/events?room=answer-2`, ['welcome', 'token', 'done'])
    await waitFor(() => source.received.length === 1, 'the welcome event')
    await post(`${url}/ask`, { room: 'answer-2', prompt: 'hello there' })
    // It reconnects after `retry: 2000` with Last-Event-ID ex-5; the hub answers 204: closed.
    await waitFor(() => source.readyState === EventSource.CLOSED, 'the EventSource to stop')
    expect(source.received).toEqual([
      { type: 'welcome', data: '{"user":"anonymous"}', lastEventId: welcomeId },
      ...tokens.map((data, i) => ({ type: 'token', data, lastEventId: `${epoch}-${i + 1}` })),
      { type: 'done', data: '', lastEventId: `${epoch}-5` },
    ])
  })
})
