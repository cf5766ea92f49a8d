/**
 * A Redis that keeps its data (`appendonly yes`, `appendfsync always`) and is killed with
 * SIGKILL, then restarted: a live stream carries on and a client resuming with `Last-Event-ID`
 * gets exactly what it missed, with no reset on either (the epoch and the stream survive). The
 * non-persistent case (a reset, never a silent gap) is in multi-node.test.ts.
 */
import type { Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { openStream } from '../helpers/raw-stream.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

const opened: { redis?: TestRedis; hub?: TestHub; broker?: RedisBroker; client?: Redis } = {}
afterAll(async () => {
  await opened.hub?.close()
  await opened.broker?.close()
  opened.client?.disconnect()
  await opened.redis?.stop()
})

describe('a persistent Redis restarted', () => {
  it('loses nothing acknowledged: live streams carry on, resumes are exact, no reset', async () => {
    const redis = (opened.redis = await startRedis({ aof: true }))
    const client = (opened.client = redis.client())
    const broker = (opened.broker = new RedisBroker({ client, blockMs: 200 }))
    const hub = (opened.hub = await startHub({ broker }))
    hub.server.hub.on('error', () => {}) // the outage is reported; expected here
    const live = await openStream(`${hub.url}/events?topic=t`)
    await live.waitForText('id: ')
    const ids: string[] = []
    const publish = async (data: string): Promise<void> => {
      // Right after the restart the client may still be reconnecting: a 503 is retried.
      const answer = await waitFor(async () => {
        const { status, json } = await hub.publish({ topic: 't', data })
        return status === 200 ? (json as { id: string }) : null
      }, `publish ${data}`)
      ids.push(answer.id)
    }
    for (let i = 1; i <= 5; i++) await publish(`e${i}`)
    await live.waitForText('data: e5\n\n')

    await redis.restart()
    await waitFor(() => broker.health().ok, 'the broker reading again', 10_000)
    for (let i = 6; i <= 8; i++) await publish(`e${i}`)
    await live.waitForText('data: e8\n\n')
    const want = Array.from({ length: 8 }, (_, i) => `e${i + 1}`)
    expect(live.events.map((event) => event.data)).toEqual(want)
    expect(live.events.map((event) => event.id)).toEqual(ids)
    expect(live.text()).not.toContain('ssehub.reset')

    // A client that saw up to e3 before the restart resumes exactly after it.
    const resumed = await openStream(`${hub.url}/events?topic=t`, { 'last-event-id': ids[2]! })
    live.close()
    await resumed.waitForText('data: e8\n\n')
    expect(resumed.events.map((event) => event.data)).toEqual(want.slice(3))
    expect(resumed.text()).not.toContain('ssehub.reset')
    resumed.close()
  }, 30_000)
})
