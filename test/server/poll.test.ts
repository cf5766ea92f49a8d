import { describe, expect, it } from 'vitest'
import { hubFixture } from '../helpers/hub-server.js'

const fixture = hubFixture()

interface Polled {
  id: string
  event: string
  data: string
}

async function poll(url: string): Promise<{ status: number; events: Polled[] | null }> {
  const response = await fetch(url)
  const text = await response.text()
  return { status: response.status, events: text === '' ? null : (JSON.parse(text) as Polled[]) }
}

describe('GET /poll', () => {
  it('answers [] at the timeout when nothing was published', async () => {
    const hub = await fixture.start()
    const started = Date.now()
    expect(await poll(`${hub.url}/poll?topic=a&timeoutMs=50`)).toEqual({ status: 200, events: [] })
    expect(Date.now() - started).toBeGreaterThanOrEqual(40)
    expect(hub.server.hub.stats().connections).toBe(0)
  })

  it('answers as soon as an event is published, with the same id as /events', async () => {
    const hub = await fixture.start()
    const pending = poll(`${hub.url}/poll?topic=a&timeoutMs=10000`)
    await expect.poll(() => hub.server.hub.subscriberCount('a'), { timeout: 5000 }).toBe(1)
    const { id } = await hub.server.hub.publish({ topic: 'a', event: 'update', data: 'x\ny' })
    expect(await pending).toEqual({ status: 200, events: [{ id, event: 'update', data: 'x\ny' }] })
    await expect.poll(() => hub.server.hub.stats().connections, { timeout: 5000 }).toBe(0)
  })

  it('replays after lastEventId at once, like /events', async () => {
    const hub = await fixture.start()
    const first = await hub.server.hub.publish({ topic: 'a', data: '1' })
    const second = await hub.server.hub.publish({ topic: 'a', data: '2' })
    const third = await hub.server.hub.publish({ topic: 'a', data: '3' })
    const answer = await poll(`${hub.url}/poll?topic=a&lastEventId=${first.id}&timeoutMs=10000`)
    expect(answer.events).toEqual([
      { id: second.id, event: 'message', data: '2' },
      { id: third.id, event: 'message', data: '3' },
    ])
  })

  it('ends a finite topic: the final event, then 204', async () => {
    const hub = await fixture.start()
    const pending = poll(`${hub.url}/poll?topic=job&timeoutMs=10000`)
    await expect.poll(() => hub.server.hub.subscriberCount('job'), { timeout: 5000 }).toBe(1)
    const final = await hub.server.hub.publish({
      topic: 'job',
      event: 'done',
      data: '{}',
      close: true,
    })
    expect(await pending).toEqual({
      status: 200,
      events: [{ id: final.id, event: 'done', data: '{}' }],
    })
    const again = await poll(`${hub.url}/poll?topic=job&lastEventId=${final.id}&timeoutMs=100`)
    expect(again).toEqual({ status: 204, events: null })
  })

  it('answers bad input with JSON 400', async () => {
    const hub = await fixture.start()
    for (const query of ['topic=a&timeoutMs=-1', 'topic=a&timeoutMs=abc', 'topic=%40x']) {
      const response = await fetch(`${hub.url}/poll?${query}`)
      expect(response.status).toBe(400)
      expect(((await response.json()) as { error: { code: string } }).error.code).toMatch(
        /^ERR_SSE_/,
      )
    }
  })
})
