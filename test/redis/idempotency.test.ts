/**
 * "Publish at least once, deliver exactly once", end to end: the library's `publish()` (and the
 * CLI on it) sends an event through a real TCP balancer that loses the hub's first answer after
 * the hub took the event; the retry carries the same idempotency key and gets the first id back.
 * On Redis the retry lands on another node, and concurrent publishes on two nodes under one key
 * publish once.
 */
import { connect, createServer, type Server, type Socket } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { publish } from '../../src/client/publisher.js'
import { killAll, runCli, startCliHub, type CliProcess } from '../helpers/cli.js'
import { openStream, type RawStream } from '../helpers/raw-stream.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'

let redis: TestRedis
let prefixes = 0
const running: CliProcess[] = []
const streams: RawStream[] = []
const servers: Server[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close()
  for (const server of servers.splice(0)) server.close()
  await killAll(running)
})

/**
 * A TCP balancer over `backends`, round robin per connection. On its first connection it passes
 * the request on and then cuts both sides as soon as the backend starts answering: the hub took
 * the event, the publisher never hears so.
 */
async function lossyBalancer(backends: string[]): Promise<{ url: string; connections(): number }> {
  let next = 0
  let count = 0
  const server = createServer((client: Socket) => {
    const target = new URL(backends[next++ % backends.length]!)
    const first = count++ === 0
    const upstream = connect(Number(target.port), target.hostname)
    client.pipe(upstream)
    upstream.on('data', (chunk: Buffer) => {
      if (first) {
        client.destroy()
        upstream.destroy()
      } else client.write(chunk)
    })
    upstream.on('end', () => client.end())
    for (const socket of [client, upstream]) socket.on('error', () => {})
    client.on('close', () => upstream.destroy())
  })
  servers.push(server)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  return { url: `http://127.0.0.1:${port}`, connections: () => count }
}

async function nodes(count: number, redisUrl?: string): Promise<string[]> {
  const prefix = `idem${++prefixes}:{h}:`
  const args = redisUrl === undefined ? [] : ['--redis', redisUrl, '--redis-prefix', prefix]
  const started = await Promise.all(
    Array.from({ length: count }, () => startCliHub(['--heartbeat-ms', 'off', ...args])),
  )
  running.push(...started.map((node) => node.cli))
  return started.map((node) => node.url)
}

async function subscribe(url: string): Promise<RawStream> {
  const stream = await openStream(`${url}/events?topic=t`)
  streams.push(stream)
  await stream.waitForText('id: ')
  return stream
}

describe('at least once, exactly once', () => {
  it.each([
    ['one node in memory', 1, false],
    ['two nodes on Redis (the retry lands on the other node)', 2, true],
  ])('a lost answer is retried with the same key: %s', async (_, count, onRedis) => {
    const urls = await nodes(count, onRedis ? redis.url : undefined)
    const watchers = await Promise.all(urls.map((url) => subscribe(url)))
    const balancer = await lossyBalancer(urls)
    const retries: string[] = []
    const answer = await publish(
      { topic: 't', data: 'exactly once' },
      {
        hub: balancer.url,
        backoffMs: 10,
        onRetry: ({ reason }) => retries.push(reason),
      },
    )
    expect(retries).toHaveLength(1)
    expect(retries[0]).toMatch(/cannot reach/)
    expect(balancer.connections()).toBe(2)
    expect(answer).toMatchObject({ localConnections: 0, duplicate: true })
    // A marker: everything before it was delivered, and the event came once, with that id.
    await publish({ topic: 't', data: 'marker' }, { hub: urls[0]! })
    for (const watcher of watchers) {
      await watcher.waitForText('data: marker\n\n')
      expect(watcher.events.map((event) => [event.id, event.data])).toEqual([
        [answer.id, 'exactly once'],
        [expect.any(String), 'marker'],
      ])
    }
  })

  it('concurrent publishes of one key on two Redis nodes publish once; the CLI says so', async () => {
    const [a, b] = await nodes(2, redis.url)
    const watcher = await subscribe(a!)
    const answers = await Promise.all(
      Array.from({ length: 6 }, (_, i) =>
        publish(
          { topic: 't', data: 'one' },
          { hub: i % 2 === 0 ? a! : b!, idempotencyKey: 'order-17' },
        ),
      ),
    )
    expect(new Set(answers.map((answer) => answer.id)).size).toBe(1)
    expect(answers.filter((answer) => answer.duplicate !== true)).toHaveLength(1)
    const keyed = (data: string) =>
      runCli(['publish', '--hub', b!, '--topic', 't', '--idempotency-key', 'order-17', data])
    const cli = keyed('one')
    expect(await cli.exited).toBe(0)
    expect(cli.stdout()).toBe(`${answers[0]!.id} (already published)\n`)
    const other = keyed('two')
    expect(await other.exited).toBe(1)
    expect(other.stderr()).toMatch(/^ssehub publish: hub answered 409: Idempotency key "order-17"/)
    await publish({ topic: 't', data: 'marker' }, { hub: a! })
    await watcher.waitForText('data: marker\n\n')
    expect(watcher.events.map((event) => event.data)).toEqual(['one', 'marker'])
  })
})
