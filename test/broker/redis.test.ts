import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis.js'
import { createHub } from '../../src/index.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { describeBrokerContract } from './contract.js'

let redis: TestRedis
let prefixes = 0
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

// Each broker gets its own key prefix: tests do not see each other's streams.
describeBrokerContract('redis', {
  make: (options) =>
    Promise.resolve(
      new RedisBroker({
        client: redis.client(),
        prefix: `t${++prefixes}:{h}:`,
        blockMs: 200,
        ...options,
      }),
    ),
})

describe('RedisBroker', () => {
  it('uses versioned cursor ids from Redis stream ids and reads once per event for any number of connections', async () => {
    const client = redis.client()
    const broker = new RedisBroker({ client, prefix: `t${++prefixes}:{h}:`, blockMs: 200 })
    const delivered: string[] = []
    await broker.start({
      publication: (p) => delivered.push(p.id),
      command: () => {},
      reset: () => {},
      error: () => {},
    })
    const published = await broker.publish({ keys: ['a'], data: 'x' })
    expect(published.id).toMatch(/^1~0\.[0-9a-z]{8}\.\d+-\d+$/)
    const deadline = Date.now() + 5000
    while (delivered.length === 0 && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 2))
    expect(delivered).toEqual([published.id])
    expect(broker.health()).toMatchObject({ ok: true, broker: 'redis' })
    await broker.close()
  })

  it('has no synchronous publish: Hub.publishNow says so and Hub.publish goes through Redis', async () => {
    const broker = new RedisBroker({
      client: redis.client(),
      prefix: `t${++prefixes}:{h}:`,
      blockMs: 200,
    })
    const hub = createHub({ broker, heartbeatMs: null })
    await hub.ready
    expect(hub.publishNow({ topic: 'a', data: 'x' })).toBeUndefined()
    const result = await hub.publish({ topic: 'a', data: 'x' })
    expect(result.id).toMatch(/^1~0\.[0-9a-z]{8}\.\d+-\d+$/)
    expect(result.connections).toBe(0)
    await hub.close()
    await broker.close()
  })
})
