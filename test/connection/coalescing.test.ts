import { describe, expect, it } from 'vitest'
import { createHub } from '../../src/index.js'
import { joinFrames, MAX_BATCH_BYTES } from '../../src/connection/flush.js'
import { hubFixture } from '../helpers/hub-server.js'

const fixture = hubFixture()

describe('writes coalesced per connection within a tick', () => {
  it('joins a batch once and shares the Buffer with the next batch of the same frames', () => {
    const a = Buffer.from('data: a\n\n')
    const b = Buffer.from('data: b\n\n')
    const first = joinFrames(a, [b])
    expect(first.toString()).toBe('data: a\n\ndata: b\n\n')
    // Same frames (by identity): the same Buffer, not a new copy per recipient.
    expect(joinFrames(a, [b])).toBe(first)
    // Equal bytes in other Buffers, or another order: a new join.
    const other = joinFrames(b, [a])
    expect(other).not.toBe(first)
    expect(other.toString()).toBe('data: b\n\ndata: a\n\n')
    expect(joinFrames(Buffer.from('data: a\n\n'), [b])).not.toBe(first)
  })

  it('keeps each stream exact when many publishes of several topics land in one turn', async () => {
    const hub = await fixture.start()
    const onA = await fixture.stream('/events?topic=a')
    const onAB = await fixture.stream('/events?topic=a&topic=b')
    const onB = await fixture.stream('/events?topic=b')
    await Promise.all([onA, onAB, onB].map((s) => s.waitForText('id: ')))
    // 60 publishes issued in one synchronous turn, alternating topics, then a final event on `a`.
    const publishes = Array.from({ length: 60 }, (_, i) =>
      hub.server.hub.publish({ topic: i % 2 === 0 ? 'a' : 'b', data: `e${i}` }),
    )
    publishes.push(hub.server.hub.publish({ topic: 'a', data: 'last', close: true }))
    await Promise.all(publishes)
    const evens = Array.from({ length: 30 }, (_, i) => `e${2 * i}`)
    const odds = Array.from({ length: 30 }, (_, i) => `e${2 * i + 1}`)
    const all = Array.from({ length: 60 }, (_, i) => `e${i}`)
    const dataOf = async (
      stream: Awaited<ReturnType<typeof fixture.stream>>,
      n: number,
    ): Promise<string[]> => (await stream.waitForEvents(n)).map((e) => e.data)
    expect(await dataOf(onA, 31)).toEqual([...evens, 'last'])
    expect(await dataOf(onB, 30)).toEqual(odds)
    expect(await dataOf(onAB, 61)).toEqual([...all, 'last'])
    // `a` ended with its final event: the batch went out before the end of the response.
    await onA.ended
    expect(onA.text().endsWith('data: last\n\n')).toBe(true)
    expect(onB.isEnded()).toBe(false)
  })

  it('writes a batch that outgrows MAX_BATCH_BYTES at once, in order, losing nothing', async () => {
    const hub = await fixture.start()
    const stream = await fixture.stream('/events?topic=big')
    await stream.waitForText('id: ')
    const payload = 'x'.repeat(4096)
    const count = Math.ceil((3 * MAX_BATCH_BYTES) / payload.length)
    await Promise.all(
      Array.from({ length: count }, (_, i) =>
        hub.server.hub.publish({ topic: 'big', data: `${i}:${payload}` }),
      ),
    )
    const events = await stream.waitForEvents(count)
    expect(events.map((e) => e.data.split(':')[0])).toEqual(
      Array.from({ length: count }, (_, i) => String(i)),
    )
    expect(events.every((e) => e.data.endsWith(payload))).toBe(true)
  })

  it('flushes what an application sent in the same turn before closing the stream', async () => {
    const hub = createHub({ heartbeatMs: null, epoch: 'e1', retryMs: null })
    try {
      const { connection, response } = hub.subscribeWeb(new Request('http://x/events?topic=t'))
      const body = (await response).text()
      await hub.publish({ topic: 't', data: 'p' })
      // Three sends and a close in one synchronous turn: all three reach the client, then the end.
      const sent = await new Promise<boolean[]>((resolve) =>
        setImmediate(() => {
          const results = [1, 2, 3].map((n) => connection.send('token', String(n)))
          connection.close()
          resolve(results)
        }),
      )
      expect(sent).toEqual([true, true, true])
      expect(await body).toBe(
        'id: e1-0\n\nid: e1-1\ndata: p\n\nevent: token\ndata: 1\n\nevent: token\ndata: 2\n\n' +
          'event: token\ndata: 3\n\n',
      )
    } finally {
      await hub.close()
    }
  })
})
