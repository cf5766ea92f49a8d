/**
 * The Redis presence's own promises, on a real redis-server with two hub servers in this process:
 * a burst of connections costs a few batched writes (not one per connection), and a Redis that
 * restarts empty gets every node's presence back within a heartbeat.
 */
import type { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { openStream, type RawStream } from '../helpers/raw-stream.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

const TTL_MS = 900

let redis: TestRedis
let prefixes = 0
const open: { hubs: TestHub[]; brokers: RedisBroker[]; clients: Redis[]; streams: RawStream[] } = {
  hubs: [],
  brokers: [],
  clients: [],
  streams: [],
}

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})
afterEach(async () => {
  for (const stream of open.streams.splice(0)) stream.close()
  for (const hub of open.hubs.splice(0)) await hub.close()
  for (const broker of open.brokers.splice(0)) await broker.close()
  for (const client of open.clients.splice(0)) client.disconnect()
})

async function startNodes(ids: string[]): Promise<TestHub[]> {
  const prefix = `rp${++prefixes}:{h}:`
  return Promise.all(
    ids.map(async (nodeId) => {
      const client = redis.client()
      open.clients.push(client)
      const broker = new RedisBroker({
        client,
        prefix,
        nodeId,
        presenceTtlMs: TTL_MS,
        presenceFlushMs: 50,
        blockMs: 200,
      })
      open.brokers.push(broker)
      const hub = await startHub({ broker })
      // A Redis restart is reported (once per outage): expected here, kept off stderr.
      hub.server.hub.on('error', () => {})
      open.hubs.push(hub)
      return hub
    }),
  )
}

async function subscribers(url: string, topic: string): Promise<number> {
  const body = (await (await fetch(`${url}/topics/${topic}`)).json()) as { subscribers: number }
  return body.subscribers
}

/** Calls of `command` Redis has served so far (INFO commandstats). */
async function calls(client: Redis, command: string): Promise<number> {
  const info = await client.info('commandstats')
  return Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(info)?.[1] ?? 0)
}

describe('RedisPresence', () => {
  it('writes a burst of connections in a few batched writes', async () => {
    const [a, b] = await startNodes(['a', 'b'])
    const admin = redis.client()
    open.clients.push(admin)
    await waitFor(async () => (await subscribers(b!.url, 'burst')) === 0, 'node b to answer')
    const before = await calls(admin, 'hset')
    const count = 300
    const streams = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        openStream(`${a!.url}/events?topic=burst&clientId=c${i % 10}`),
      ),
    )
    open.streams.push(...streams)
    await waitFor(async () => (await subscribers(b!.url, 'burst')) === count, 'b to see 300')
    const writes = (await calls(admin, 'hset')) - before
    // Three hashes (topics, clients, connections), one HSET each per flush; a flush per 50 ms.
    expect(writes).toBeGreaterThan(0)
    expect(writes).toBeLessThan(count / 5)
    // And they leave as they came.
    for (const stream of streams) stream.close()
    await waitFor(async () => (await subscribers(b!.url, 'burst')) === 0, 'b to see 0')
  }, 20_000)

  it('puts every node back after Redis restarts empty', async () => {
    const [a, b] = await startNodes(['a', 'b'])
    open.streams.push(await openStream(`${a!.url}/events?topic=t`))
    open.streams.push(await openStream(`${b!.url}/events?topic=t`))
    await waitFor(async () => (await subscribers(b!.url, 't')) === 2, 'two subscribers')
    await redis.restart()
    // Within a heartbeat (TTL / 3) of Redis being back, each node rewrites its whole share.
    await waitFor(
      async () => (await subscribers(b!.url, 't').catch(() => -1)) === 2,
      'both subscribers counted again',
      5_000,
    )
    await waitFor(
      async () => (await subscribers(a!.url, 't').catch(() => -1)) === 2,
      'node a too',
      5_000,
    )
  }, 20_000)
})
