/**
 * Where a new subscription starts (`from=start|newest|N` on `/events`), and what
 * `GET|HEAD /topics/{topic}` says of a topic, over real HTTP on each front, exact bytes.
 */
import { describe, expect, it } from 'vitest'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'

const fixture = hubFixture()
let lives = 0

async function seed(hub: TestHub): Promise<void> {
  // a1 b1 a2 b2 a3 (ids e1-1..e1-5)
  for (const [topic, data] of [
    ['a', 'a1'],
    ['b', 'b1'],
    ['a', 'a2'],
    ['b', 'b2'],
    ['a', 'a3'],
  ] as const)
    expect((await hub.publish({ topic, data })).status).toBe(200)
}

/** The stream's bytes once `query` opened and a live event (`live<n>`) to `a` and `b` arrived. */
async function startWith(
  hub: TestHub,
  query: string,
  headers: Record<string, string> = {},
): Promise<string> {
  const stream = await fixture.stream(`/events?${query}`, headers)
  expect(stream.status).toBe(200)
  await stream.waitForText('id: ')
  const live = `live${++lives}`
  await hub.publish({ topic: ['a', 'b'], data: live })
  await stream.waitForText(`data: ${live}\n\n`)
  return stream.text()
}

describe('from: where a new subscription starts', () => {
  it('start: every event the history holds, in order, then live (two topics on one stream)', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    await seed(hub)
    lives = 0
    // The replay, the position it ends at (an id-only frame), then live.
    expect(await startWith(hub, 'topic=a&topic=b&from=start')).toBe(
      'retry: 2000\n\nid: e1-1\ndata: a1\n\nid: e1-2\ndata: b1\n\nid: e1-3\ndata: a2\n\nid: e1-4\ndata: b2\n\nid: e1-5\ndata: a3\n\nid: e1-5\n\nid: e1-6\ndata: live1\n\n',
    )
    // Only b's events: b1, b2 and the first live event (history now), then the next.
    expect(await startWith(hub, 'topic=b&from=start')).toBe(
      'retry: 2000\n\nid: e1-2\ndata: b1\n\nid: e1-4\ndata: b2\n\nid: e1-6\ndata: live1\n\nid: e1-6\n\nid: e1-7\ndata: live2\n\n',
    )
  })

  it('newest: the latest event of each topic, then live; N: the last N', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    await seed(hub)
    lives = 0
    expect(await startWith(hub, 'topic=a&topic=b&from=newest')).toBe(
      'retry: 2000\n\nid: e1-4\ndata: b2\n\nid: e1-5\ndata: a3\n\nid: e1-5\n\nid: e1-6\ndata: live1\n\n',
    )
    // The last 3 of a and b: b2, a3 and the first live event; then the next live one.
    expect(await startWith(hub, 'topic=a&topic=b&from=3')).toBe(
      'retry: 2000\n\nid: e1-4\ndata: b2\n\nid: e1-5\ndata: a3\n\nid: e1-6\ndata: live1\n\nid: e1-6\n\nid: e1-7\ndata: live2\n\n',
    )
  })

  it('Last-Event-ID wins over from; a bad from is a 400 that says what it takes', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    await seed(hub)
    lives = 0
    expect(await startWith(hub, 'topic=a&from=start', { 'last-event-id': 'e1-3' })).toBe(
      'retry: 2000\n\nid: e1-5\ndata: a3\n\nid: e1-5\n\nid: e1-6\ndata: live1\n\n',
    )
    for (const bad of ['0', 'first', '10001', '-1', '2.5']) {
      const response = await fetch(`${hub.url}/events?topic=a&from=${bad}`)
      expect(response.status, bad).toBe(400)
      const body = (await response.json()) as { error: { code: string; message: string } }
      expect(body.error.code).toBe('ERR_SSE_INVALID_FIELD')
      expect(body.error.message).toMatch(/'start'.*'newest'.*count from 1 to 10000/)
    }
  })

  it('a finished topic from the start: its events, the end, then 204 on resume', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    await hub.publish({ topic: 'job', data: '10%' })
    await hub.publish({ topic: 'job', data: '60%' })
    await hub.publish({ topic: 'job', event: 'done', data: '100%', close: true })
    const stream = await fixture.stream('/events?topic=job&from=start')
    await stream.ended
    expect(stream.text()).toBe(
      'retry: 2000\n\nid: e1-1\ndata: 10%\n\nid: e1-2\ndata: 60%\n\nevent: done\nid: e1-3\ndata: 100%\n\nid: e1-3\n\n',
    )
    const again = await fetch(`${hub.url}/events?topic=job`, {
      headers: { 'last-event-id': 'e1-3' },
    })
    expect(again.status).toBe(204)
  })
})

describe('GET /topics/{topic}: state, latest id, subscribers', () => {
  it('tells unknown, open and ended apart, in the body and (for HEAD) in headers', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    const get = async (topic: string): Promise<unknown> =>
      (await fetch(`${hub.url}/topics/${topic}`)).json()
    const node = ((await (await fetch(`${hub.url}/stats`)).json()) as { node: string }).node
    expect(await get('nothing')).toEqual({
      topic: 'nothing',
      state: 'unknown',
      lastEventId: null,
      subscribers: 0,
      nodes: { [node]: 0 },
    })
    await fixture.stream('/events?topic=gen')
    expect(await get('gen')).toMatchObject({ state: 'open', lastEventId: null, subscribers: 1 })
    await hub.publish({ topic: 'gen', data: 'token' })
    expect(await get('gen')).toMatchObject({ state: 'open', lastEventId: 'e1-1' })
    await hub.publish({ topic: 'gen', event: 'done', data: '', close: true })
    expect(await get('gen')).toMatchObject({ state: 'ended', lastEventId: 'e1-2', subscribers: 0 })
    const head = await fetch(`${hub.url}/topics/gen`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(await head.text()).toBe('')
    expect(head.headers.get('ssehub-topic-state')).toBe('ended')
    expect(head.headers.get('ssehub-last-event-id')).toBe('e1-2')
    expect(head.headers.get('ssehub-subscribers')).toBe('0')
  })
})
