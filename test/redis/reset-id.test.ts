import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis.js'
import { hubFixture } from '../helpers/hub-server.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

let redis: TestRedis
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

const fixture = hubFixture()

describe('a broker-wide reset on Redis', () => {
  it('carries the new log position as its id: a reconnect from it replays exactly what came after the reset', async () => {
    const client = redis.client()
    const prefix = 'reset-id:{h}:'
    const broker = new RedisBroker({ client, prefix, blockMs: 50 })
    const hub = await fixture.start({ broker, heartbeatMs: null })
    const errors: string[] = []
    hub.server.hub.on('error', (error: Error & { code?: string }) => errors.push(error.code ?? ''))
    const s = await fixture.stream('/events?topic=a')
    await waitFor(() => hub.server.hub.subscriberCount('a') === 1, 'subscribed')
    await hub.publish({ topic: 'a', data: 'before' })
    await s.waitForEvents(1)
    // Redis loses its data: the epoch goes, and the reader fails once (the log is not a stream),
    // then finds a new epoch and resets every connection.
    await client.del(`${prefix}meta`)
    await client.set(`${prefix}log`, 'not a stream')
    await waitFor(() => !broker.health().ok, 'the reader failing')
    await client.del(`${prefix}log`)
    await s.waitForText('ssehub.reset')
    const epoch = await client.hget(`${prefix}meta`, 'e')
    const resetId = `1~0.${epoch}.0-0`
    await s.waitForText(`id: ${resetId}\n`)
    expect(s.text().slice(s.text().indexOf('event: ssehub.reset'))).toBe(
      `event: ssehub.reset\nid: ${resetId}\ndata: {"reason":"epoch","topics":["a"]}\n\n`,
    )
    // The client drops right after the reset; the new log goes on.
    s.close()
    await waitFor(() => hub.server.hub.stats().connections === 0, 'disconnect')
    await hub.publish({ topic: 'a', data: 'after' })
    await hub.publish({ topic: 'b', data: 'not mine' })
    const again = await fixture.stream('/events?topic=a', { 'last-event-id': resetId })
    await again.waitForEvents(1)
    await again.waitForText(`id: 1~0.${epoch}.`)
    expect(again.text()).not.toContain('ssehub.reset')
    expect(again.events.map((e) => e.data)).toEqual(['after'])
    expect(errors).toEqual(['ERR_SSE_BROKER_UNAVAILABLE'])
    await broker.close()
    expect(again.events[0]!.id).toMatch(new RegExp(`^1~0\\.${epoch}\\.\\d+-0$`))
  }, 20_000)
})
