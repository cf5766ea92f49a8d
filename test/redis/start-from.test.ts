/**
 * `from=start|newest|N` and `GET /topics/{topic}` on Redis, with two hub nodes on one real
 * redis-server: events published on one node, a new subscription on the other.
 */
import type { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { openStream, type RawStream } from '../helpers/raw-stream.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'

let redis: TestRedis
let prefixes = 0
const hubs: TestHub[] = []
const brokers: RedisBroker[] = []
const clients: Redis[] = []
const streams: RawStream[] = []
let lives = 0

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close()
  for (const hub of hubs.splice(0)) await hub.close()
  for (const broker of brokers.splice(0)) await broker.close()
  for (const client of clients.splice(0)) client.disconnect()
})

async function twoNodes(): Promise<[TestHub, TestHub]> {
  const prefix = `sf${++prefixes}:{h}:`
  const started = await Promise.all(
    ['a', 'b'].map(async (nodeId) => {
      const client = redis.client()
      clients.push(client)
      const broker = new RedisBroker({ client, prefix, nodeId, blockMs: 200 })
      brokers.push(broker)
      const hub = await startHub({ broker })
      hubs.push(hub)
      return hub
    }),
  )
  return started as [TestHub, TestHub]
}

/** The events (data) a new stream on `on` gets for `query`, up to a live one sent on `from`. */
async function startWith(on: TestHub, from: TestHub, query: string): Promise<string[]> {
  const stream = await openStream(`${on.url}/events?${query}`)
  streams.push(stream)
  await stream.waitForText('id: ')
  const live = `live${++lives}`
  await from.publish({ topic: ['a', 'b'], data: live })
  await stream.waitForText(`data: ${live}\n\n`)
  return stream.events.map((event) => event.data)
}

describe('from and topic state on Redis, across nodes', () => {
  it('start, newest and N replay what another node published, then live', async () => {
    const [one, two] = await twoNodes()
    lives = 0
    for (const [topic, data] of [
      ['a', 'a1'],
      ['b', 'b1'],
      ['a', 'a2'],
      ['b', 'b2'],
      ['a', 'a3'],
    ] as const)
      expect((await one.publish({ topic, data })).status).toBe(200)
    expect(await startWith(two, one, 'topic=a&topic=b&from=start')).toEqual([
      'a1',
      'b1',
      'a2',
      'b2',
      'a3',
      'live1',
    ])
    // Each live event goes to both topics and stays in the history.
    expect(await startWith(two, one, 'topic=a&from=newest')).toEqual(['live1', 'live2'])
    expect(await startWith(two, one, 'topic=b&from=2')).toEqual(['live1', 'live2', 'live3'])
    // The latest of a and of b is one event (sent once); the client id has none yet.
    expect(await startWith(two, one, 'topic=a&topic=b&from=newest&clientId=z')).toEqual([
      'live3',
      'live4',
    ])
    // Published on node b, asked on node a.
    expect(await startWith(one, two, 'topic=b&from=3')).toEqual([
      'live2',
      'live3',
      'live4',
      'live5',
    ])
  })

  it('GET /topics/{topic} on either node: state, latest id, subscribers on both', async () => {
    const [one, two] = await twoNodes()
    const get = async (hub: TestHub, topic: string) =>
      (await (await fetch(`${hub.url}/topics/${topic}`)).json()) as {
        state: string
        lastEventId: string | null
        subscribers: number
      }
    expect(await get(two, 'job')).toMatchObject({ state: 'unknown', lastEventId: null })
    const { json } = await one.publish({ topic: 'job', data: '50%' })
    expect(await get(two, 'job')).toMatchObject({ state: 'open', lastEventId: json.id })
    const end = await one.publish({ topic: 'job', data: 'done', close: true })
    expect(await get(two, 'job')).toMatchObject({ state: 'ended', lastEventId: end.json.id })
  })
})
