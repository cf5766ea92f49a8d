/**
 * Cluster-wide answers on Redis, through real `ssehub serve` processes on one real redis-server:
 * the online count, `/clients`, `DELETE /clients/{id}` from a node the client is not on, `/stats`
 * and the dashboard's feed count every node; a killed node vanishes within `--presence-ttl`, a
 * node stopped cleanly at once.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { startCliHub, type CliProcess } from '../helpers/cli.js'
import { openStream, type RawStream } from '../helpers/raw-stream.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

const TTL_MS = 1_500

let redis: TestRedis
let prefixes = 0
const nodes: { url: string; cli: CliProcess }[] = []
const streams: RawStream[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close()
  for (const node of nodes.splice(0)) {
    if (node.cli.child.exitCode === null && node.cli.child.signalCode === null) {
      node.cli.child.kill('SIGKILL')
      await node.cli.exited
    }
  }
})

/** Starts nodes `node-<name>` on one deployment (a fresh prefix); their URLs by name. */
async function startNodes(names: string[]): Promise<Record<string, string>> {
  const ids = names.map((name) => `node-${name}`)
  const prefix = `pr${++prefixes}:{h}:`
  const started = await Promise.all(
    ids.map((id) =>
      startCliHub([
        '--redis',
        redis.url,
        '--redis-prefix',
        prefix,
        '--node-id',
        id,
        '--presence-ttl',
        String(TTL_MS),
        '--heartbeat-ms',
        'off',
        '--shutdown-timeout-ms',
        '1000',
      ]),
    ),
  )
  nodes.push(...started)
  return Object.fromEntries(names.map((name, index) => [name, started[index]!.url]))
}

async function subscribe(url: string, query: string): Promise<RawStream> {
  const stream = await openStream(`${url}/events?${query}`)
  expect(stream.status).toBe(200)
  streams.push(stream)
  return stream
}

interface TopicBody {
  topic: string
  subscribers: number
  nodes: Record<string, number>
}
interface ClientsBody {
  connections: { node: string; clientId?: string; topics: string[] }[]
}
interface StatsBody {
  node: string
  connections: number
  cluster?: {
    nodes: { node: string; stats: { connections: number } }[]
    totals: { connections: number }
  }
}
interface ErrorBody {
  error: { code: string; message: string }
}

async function json<T>(url: string, init?: RequestInit): Promise<{ status: number; body: T }> {
  const response = await fetch(url, init)
  const text = await response.text()
  return { status: response.status, body: (text === '' ? null : JSON.parse(text)) as T }
}

/** Waits until `GET url` answers a body that `accept` takes; returns it. */
async function until<T>(url: string, accept: (body: T) => boolean, what: string): Promise<T> {
  let last: unknown
  return waitFor(
    async () => {
      const { body } = await json<T>(url)
      last = body
      return accept(body) ? { body } : null
    },
    what,
    5_000,
  ).then(
    ({ body }) => body,
    (error: Error) => {
      throw new Error(`${error.message}; last answer: ${JSON.stringify(last)}`)
    },
  )
}

describe('cluster-wide answers on Redis', () => {
  it('counts, lists and closes clients on every node, from any node', async () => {
    const { a, b, c } = await startNodes(['a', 'b', 'c'])
    const ada1 = await subscribe(a!, 'topic=room&clientId=ada')
    const ada2 = await subscribe(a!, 'topic=room&clientId=ada')
    await subscribe(b!, 'topic=room&clientId=bob')
    for (let i = 0; i < 3; i++) await subscribe(c!, 'topic=other')

    // The online count of `room`, asked on the node that has none of its subscribers.
    const topic = await until<TopicBody>(
      `${c}/topics/room`,
      (body) => body.subscribers === 3,
      'room to count 3 subscribers on node c',
    )
    expect(topic).toEqual({
      topic: 'room',
      state: 'open',
      lastEventId: null,
      subscribers: 3,
      nodes: { 'node-a': 2, 'node-b': 1, 'node-c': 0 },
    })

    // Every node's connections, each with its node.
    const listed = (
      await until<ClientsBody>(
        `${b}/clients`,
        (body) => body.connections.length === 6,
        'six connections listed on node b',
      )
    ).connections
    const summary = listed
      .map((info) => `${info.node} ${info.clientId ?? '-'} ${info.topics.join(',')}`)
      .sort()
    expect(summary).toEqual([
      'node-a ada room',
      'node-a ada room',
      'node-b bob room',
      'node-c - other',
      'node-c - other',
      'node-c - other',
    ])
    // This node's own come first.
    expect(listed[0]!.node).toBe('node-b')

    // Ada is on node a only: closing her from node c ends both streams and answers 204.
    expect((await json(`${c}/clients/ada`, { method: 'DELETE' })).status).toBe(204)
    await Promise.all([ada1.ended, ada2.ended])
    await until<TopicBody>(
      `${c}/topics/room`,
      (body) => body.subscribers === 1,
      'room to count only bob once ada is gone',
    )
    // Nobody by that id anywhere: 404, with a message that says so.
    const missing = await json<ErrorBody>(`${c}/clients/ada`, { method: 'DELETE' })
    expect(missing.status).toBe(404)
    expect(missing.body.error.message).toMatch(/on any node/)
    // Bob, on node b, closed from node a.
    expect((await json(`${a}/clients/bob`, { method: 'DELETE' })).status).toBe(204)
  }, 30_000)

  it('/stats and the dashboard feed show every node and the totals', async () => {
    const { a, b } = await startNodes(['a', 'b'])
    await subscribe(a!, 'topic=t')
    await subscribe(b!, 'topic=t')
    await subscribe(b!, 'topic=u')
    const stats = await until<StatsBody>(
      `${a}/stats`,
      (body) => body.cluster?.nodes.length === 2 && body.cluster.totals.connections === 3,
      'the cluster totals on node a',
    )
    expect(stats.node).toBe('node-a')
    expect(stats.connections).toBe(1) // this node's, as before
    const byNode = Object.fromEntries(
      stats.cluster!.nodes.map((report) => [report.node, report.stats.connections]),
    )
    expect(byNode).toEqual({ 'node-a': 1, 'node-b': 2 })

    // The dashboard's feed (what the page at / draws) lists both nodes.
    const ticket = await json<{ ticket: string }>(`${b}/dashboard/ticket`, { method: 'POST' })
    expect(ticket.status).toBe(200)
    const feed = await openStream(
      `${b}/dashboard/events?ticket=${encodeURIComponent(ticket.body.ticket)}`,
    )
    streams.push(feed)
    const [first] = await feed.waitForEvents(1)
    const snapshot = JSON.parse(first!.data) as {
      node: string
      nodes: { node: string }[]
      topics: [string, number][]
    }
    expect(snapshot.node).toBe('node-b')
    expect(snapshot.nodes.map((report) => report.node).sort()).toEqual(['node-a', 'node-b'])
    expect(Object.fromEntries(snapshot.topics)).toEqual({ t: 2, u: 1 })
  }, 30_000)

  it('a killed node vanishes within --presence-ttl, a stopped one at once', async () => {
    const { a, b, c } = await startNodes(['a', 'b', 'c'])
    await subscribe(a!, 'topic=t&clientId=ann')
    await subscribe(b!, 'topic=t')
    await subscribe(c!, 'topic=t')
    await until<TopicBody>(`${c}/topics/t`, (body) => body.subscribers === 3, 'three subscribers')

    // kill -9: no goodbye; its entries expire.
    const killed = nodes.find((node) => node.url === a)!
    killed.cli.child.kill('SIGKILL')
    await killed.cli.exited
    const killedAt = Date.now()
    await until<TopicBody>(
      `${c}/topics/t`,
      (body) => body.subscribers === 2 && !('node-a' in body.nodes),
      'node a to vanish',
    )
    const vanishedAfter = Date.now() - killedAt
    expect(vanishedAfter).toBeLessThanOrEqual(TTL_MS + 500)
    expect((await json(`${c}/clients/ann`, { method: 'DELETE' })).status).toBe(404)

    // SIGTERM: the node removes its own entries as it stops, well before the TTL.
    const stopped = nodes.find((node) => node.url === b)!
    stopped.cli.child.kill('SIGTERM')
    expect(await stopped.cli.exited).toBe(0)
    const stoppedAt = Date.now()
    const body = await json(`${c}/topics/t`)
    expect(body.body).toMatchObject({ topic: 't', subscribers: 1, nodes: { 'node-c': 1 } })
    expect(Date.now() - stoppedAt).toBeLessThan(TTL_MS)
  }, 30_000)
})
