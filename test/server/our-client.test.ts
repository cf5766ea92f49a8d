import { EventSource as ReferenceEventSource } from 'eventsource'
import { describe, expect, it } from 'vitest'
import { events } from '../../src/client/index.js'
import type { ParsedEvent } from '../../src/wire/parse.js'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'

let hub: TestHub
const fixture = hubFixture()

/** Collects what our client's iterator yields, in the background. */
function collect(
  url: string,
  retryMs = 20,
): { got: ParsedEvent[]; done: Promise<void>; close(): void } {
  const stream = events({ url, reconnect: { retryMs, maxRetryMs: 100 } })
  const got: ParsedEvent[] = []
  const done = (async () => {
    for await (const event of stream) got.push(event)
  })()
  fixture.track(stream)
  return { got, done, close: () => stream.close() }
}

describe('the hub read by our client (ssehub/client) and by the eventsource package', () => {
  it('gives both clients the same events, and ours the spec last event id', async () => {
    hub = await fixture.start({ epoch: 'e1', retryMs: 30 })
    const ours = collect(`${hub.url}/events?topic=news`)
    const reference: { type: string; data: string }[] = []
    const es = fixture.track(new ReferenceEventSource(`${hub.url}/events?topic=news`))
    es.onmessage = (e) => reference.push({ type: e.type, data: e.data })
    es.addEventListener('headline', (e) => reference.push({ type: e.type, data: e.data }))
    await waitFor(
      () => hub.server.hub.subscriberCount('news') === 2 && es.readyState === 1,
      'both subscribed',
    )
    await hub.publish({ topic: 'news', event: 'headline', data: 'a\r\nb\rc' })
    await hub.publish({ topic: 'news', data: { n: 1 } })
    await hub.publish({ topic: 'news', data: '' })
    await waitFor(() => ours.got.length === 3 && reference.length === 3, 'three events each')
    expect(ours.got).toEqual([
      { type: 'headline', data: 'a\nb\nc', lastEventId: 'e1-1' },
      { type: 'message', data: '{"n":1}', lastEventId: 'e1-2' },
      { type: 'message', data: '', lastEventId: 'e1-3' },
    ])
    expect(reference).toEqual(ours.got.map(({ type, data }) => ({ type, data })))
  })

  it('reconnects with Last-Event-ID from the id-only frame and misses nothing', async () => {
    hub = await fixture.start({ epoch: 'e1', retryMs: 30 })
    await hub.publish({ topic: 'feed', data: 'before anyone' })
    const ours = collect(`${hub.url}/events?topic=feed`)
    await waitFor(() => hub.server.hub.subscriberCount('feed') === 1, 'subscribed')
    // Dropped before its first event: it resumes from the id-only frame (e1-1), not from scratch.
    for (const connection of hub.server.hub.connections()) connection.close()
    await hub.publish({ topic: 'feed', data: '1' })
    await waitFor(() => ours.got.length === 1, 'the missed event')
    for (const connection of hub.server.hub.connections()) connection.close()
    await hub.publish({ topic: 'feed', data: '2' })
    await hub.publish({ topic: 'feed', data: '3' })
    await waitFor(() => ours.got.length === 3, 'three events')
    expect(ours.got.map((e) => [e.data, e.lastEventId])).toEqual([
      ['1', 'e1-2'],
      ['2', 'e1-3'],
      ['3', 'e1-4'],
    ])
  })

  it('ends for good after a finished topic: the final event, then 204', async () => {
    hub = await fixture.start({ epoch: 'e1', retryMs: 30 })
    const ours = collect(`${hub.url}/events?topic=job`)
    await waitFor(() => hub.server.hub.subscriberCount('job') === 1, 'subscribed')
    await hub.publish({ topic: 'job', event: 'progress', data: '50' })
    await hub.publish({ topic: 'job', event: 'progress', data: '100', close: true })
    await ours.done
    expect(ours.got.map((e) => e.data)).toEqual(['50', '100'])
  })
})
