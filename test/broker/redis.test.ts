import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import { RedisBroker } from '../../src/broker/redis.js'
import { createHub } from '../../src/index.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'
import { describeBrokerContract, noopSink } from './contract.js'

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
      ...noopSink,
      publication: (p) => delivered.push(p.id),
    })
    const published = await broker.publish({ keys: ['a'], data: 'x' })
    expect(published.id).toMatch(/^1~0\.[0-9a-z]{8}\.\d+-\d+$/)
    await waitFor(() => delivered.length > 0, 'the publication read back')
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
    expect(result.localConnections).toBe(0)
    await hub.close()
    await broker.close()
  })

  it('closes its reader once, so that nothing of it holds the process after close()', async () => {
    const client = redis.client()
    const duplicate = client.duplicate.bind(client)
    let reader: ReturnType<typeof duplicate> | undefined
    const spy = vi.spyOn(client, 'duplicate').mockImplementation((options) => {
      reader = duplicate(options)
      return reader
    })
    const broker = new RedisBroker({ client, prefix: `t${++prefixes}:{h}:`, blockMs: 200 })
    await broker.start(noopSink)
    await waitFor(() => broker.health().ok, 'the reader reading')
    const disconnect = vi.spyOn(reader!, 'disconnect')
    await broker.close()
    // ioredis arms a 2 s timer on each disconnect() that only the socket's close clears: a second
    // call after the close kept `ssehub serve --redis` alive until its exit fallback (1 s).
    expect(disconnect).toHaveBeenCalledTimes(1)
    spy.mockRestore()
  })

  it('tells the sink of an outage once when it starts and once when it ends; health shows only the present', async () => {
    const client = redis.client()
    const prefix = `t${++prefixes}:{h}:`
    const broker = new RedisBroker({ client, prefix, blockMs: 50 })
    const heard: string[] = []
    const outages: Error[] = []
    await broker.start({
      ...noopSink,
      error: (error) => heard.push(`error ${error.message}`),
      unavailable: (error) => {
        outages.push(error)
        heard.push('unavailable')
      },
      recovered: () => heard.push('recovered'),
    })
    // Each retry builds a new reader connection: count them to see the outage last.
    const readers = vi.spyOn(client, 'duplicate')
    // The log key turns into a string: every XREAD fails (WRONGTYPE) until it is a stream again.
    await client.set(`${prefix}log`, 'not a stream')
    await waitFor(() => readers.mock.calls.length >= 3, 'three retries')
    const degraded = broker.health()
    expect(degraded).toMatchObject({ ok: false, details: { reader: 'reconnecting' } })
    expect(degraded.details?.lastError).toMatch(/WRONGTYPE/)
    expect(Date.parse(String(degraded.details?.lastErrorAt))).toBeGreaterThan(Date.now() - 10_000)
    expect(heard).toEqual(['unavailable'])
    expect(outages[0]).toMatchObject({ code: 'ERR_SSE_BROKER_UNAVAILABLE' })
    expect(outages[0]!.message).toMatch(/WRONGTYPE/)
    await client.del(`${prefix}log`)
    await waitFor(() => heard.length === 2, 'the recovery', 10_000)
    expect(heard).toEqual(['unavailable', 'recovered'])
    // Recovered: ok, and no error of the past presented as a current one.
    const healthy = broker.health()
    expect(healthy.ok).toBe(true)
    expect(healthy.details).not.toHaveProperty('lastError')
    expect(healthy.details).not.toHaveProperty('lastErrorAt')
    // A new outage is reported again, and its end too.
    await client.set(`${prefix}log`, 'not a stream')
    await waitFor(() => heard.length === 3, 'the second outage')
    await client.del(`${prefix}log`)
    await waitFor(() => heard.length === 4, 'the second recovery', 10_000)
    expect(heard).toEqual(['unavailable', 'recovered', 'unavailable', 'recovered'])
    await broker.close()
    readers.mockRestore()
  })
})
