import { describe, expect, it } from 'vitest'
import { EventSource } from 'eventsource'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'
import type { RawStream } from '../helpers/raw-stream.js'
import { waitFor } from '../helpers/wait.js'

let hub: TestHub
const fixture = hubFixture()
const stream = fixture.stream.bind(fixture)

const datas = (s: RawStream): string[] => s.events.map((e) => `${e.event ?? 'message'}:${e.data}`)

describe('Last-Event-ID replay', () => {
  it('replays exactly the missed events that match the topics / client id / broadcasts, in order, then continues live', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const first = await stream('/events?topic=a&clientId=u1')
    await first.waitForText('id: e1-0\n\n')
    await hub.publish({ topic: 'a', data: '1' })
    await first.waitForEvents(1)
    first.close()
    await waitFor(() => hub.server.hub.stats().connections === 0, 'disconnect')
    await hub.publish({ topic: 'a', data: '2' })
    await hub.publish({ topic: 'b', data: 'not mine' })
    await hub.publish({ clientId: 'u1', data: '3' })
    await hub.publish({ clientId: 'u2', data: 'not mine' })
    await hub.publish({ all: true, data: '4' })
    const again = await stream('/events?topic=a&clientId=u1', { 'last-event-id': 'e1-1' })
    await again.waitForText('id: e1-6\n\n')
    await hub.publish({ topic: 'a', data: '5' })
    await again.waitForEvents(4)
    expect(again.text()).toBe(
      'retry: 2000\n\nid: e1-2\ndata: 2\n\nid: e1-4\ndata: 3\n\nid: e1-6\ndata: 4\n\nid: e1-6\n\nid: e1-7\ndata: 5\n\n',
    )
  })

  it('resumes from the id-only frame when a client drops before its first event', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    await hub.publish({ topic: 'a', data: 'old' })
    const s = await stream('/events?topic=a')
    await s.waitForText('id: e1-1\n\n')
    expect(s.lastEventId()).toBe('e1-1')
    s.close()
    await waitFor(() => hub.server.hub.stats().connections === 0, 'disconnect')
    await hub.publish({ topic: 'a', data: 'missed' })
    const again = await stream('/events?topic=a', { 'last-event-id': s.lastEventId()! })
    await again.waitForEvents(1)
    expect(datas(again)).toEqual(['message:missed'])
  })

  it('takes lastEventId from the query, and the Last-Event-ID header wins over it', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    for (let i = 1; i <= 3; i++) await hub.publish({ topic: 'a', data: String(i) })
    const query = await stream('/events?topic=a&lastEventId=e1-1')
    await query.waitForEvents(2)
    expect(datas(query)).toEqual(['message:2', 'message:3'])
    const both = await stream('/events?topic=a&lastEventId=e1-1', { 'last-event-id': 'e1-2' })
    await both.waitForEvents(1)
    await both.waitForText('id: e1-3\n\n')
    expect(datas(both)).toEqual(['message:3'])
  })

  it('sends ssehub.reset with data naming the topics when the id is from another epoch, unknown or expired', async () => {
    hub = await fixture.start({ epoch: 'e1', historyMaxEvents: 2 })
    for (let i = 1; i <= 5; i++) await hub.publish({ topic: 'a', data: String(i) })
    const cases: [string, string][] = [
      ['zz-3', 'epoch'],
      ['garbage', 'unknown'],
      ['e1-99', 'unknown'],
      ['e1-1', 'expired'],
    ]
    for (const [id, reason] of cases) {
      const s = await stream('/events?topic=a&topic=b&clientId=u1', { 'last-event-id': id })
      await s.waitForText('id: e1-5\n\n')
      expect(s.text()).toBe(
        `retry: 2000\n\nevent: ssehub.reset\nid: e1-5\ndata: {"reason":"${reason}","topics":["a","b"],"clientId":"u1"}\n\nid: e1-5\n\n`,
      )
      s.close()
    }
    // Within the history: no reset, exact replay.
    const ok = await stream('/events?topic=a', { 'last-event-id': 'e1-3' })
    await ok.waitForEvents(2)
    expect(datas(ok)).toEqual(['message:4', 'message:5'])
    expect(ok.text()).not.toContain('ssehub.reset')
  })

  it('gives ssehub.reset an id: a client that drops right after it resumes exactly, with no second reset', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    for (let i = 1; i <= 3; i++) await hub.publish({ topic: 'a', data: String(i) })
    const s = await stream('/events?topic=a', { 'last-event-id': 'zz-2' })
    await s.waitForText('id: e1-3\n\n')
    expect(s.text()).toBe(
      'retry: 2000\n\nevent: ssehub.reset\nid: e1-3\ndata: {"reason":"epoch","topics":["a"]}\n\nid: e1-3\n\n',
    )
    s.close()
    await waitFor(() => hub.server.hub.stats().connections === 0, 'disconnect')
    await hub.publish({ topic: 'a', data: '4' })
    await hub.publish({ topic: 'b', data: 'not mine' })
    const again = await stream('/events?topic=a', { 'last-event-id': 'e1-3' })
    await again.waitForText('id: e1-5\n\n')
    expect(again.text()).toBe('retry: 2000\n\nid: e1-4\ndata: 4\n\nid: e1-5\n\n')
  })

  it('drops history older than historyMaxAgeMs', async () => {
    hub = await fixture.start({ epoch: 'e1', historyMaxAgeMs: 50 })
    await hub.publish({ topic: 'a', data: 'old' })
    const stamp = Date.now()
    await waitFor(() => Date.now() - stamp > 80, 'history to age')
    await hub.publish({ topic: 'a', data: 'new' })
    const s = await stream('/events?topic=a', { 'last-event-id': 'e1-0' })
    await s.waitForText('id: e1-2\n\n')
    expect(s.text()).toContain('"reason":"expired"')
  })

  it('a reconnecting eventsource client gets what it missed with no gap and no duplicate', async () => {
    hub = await fixture.start({ epoch: 'e1', retryMs: 50 })
    const seen: string[] = []
    const es = new EventSource(`${hub.url}/events?topic=feed`)
    fixture.track(es)
    es.onmessage = (e) => seen.push(e.data)
    await waitFor(() => hub.server.hub.subscriberCount('feed') === 1, 'subscribed')
    let n = 0
    for (; n < 5; n++) await hub.publish({ topic: 'feed', data: String(n) })
    await waitFor(() => seen.length === 5, 'first five')
    // The server drops the stream (like a proxy timeout); events published meanwhile must not be lost.
    for (const connection of hub.server.hub.connections()) connection.close()
    for (; n < 10; n++) await hub.publish({ topic: 'feed', data: String(n) })
    await waitFor(() => seen.length === 10, 'ten events', 5000)
    for (; n < 12; n++) await hub.publish({ topic: 'feed', data: String(n) })
    await waitFor(() => seen.length === 12, 'twelve events')
    expect(seen).toEqual(Array.from({ length: 12 }, (_, i) => String(i)))
  })
})

describe('finite topics', () => {
  it('ends subscribers after the close event; a reconnect that saw it gets 204, a new one the final event', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const s = await stream('/events?topic=job-1')
    await s.waitForText('id: e1-0\n\n')
    await hub.publish({ topic: 'job-1', event: 'progress', data: { pct: 50 } })
    await hub.publish({ topic: 'job-1', event: 'progress', data: { pct: 100 }, close: true })
    await s.ended
    expect(s.text()).toBe(
      'retry: 2000\n\nid: e1-0\n\nevent: progress\nid: e1-1\ndata: {"pct":50}\n\nevent: progress\nid: e1-2\ndata: {"pct":100}\n\n',
    )
    expect(hub.server.hub.stats().closed.completed).toBe(1)
    // Saw the final event: 204, so EventSource stops for good.
    const seen = await fetch(`${hub.url}/events?topic=job-1`, {
      headers: { 'last-event-id': 'e1-2' },
    })
    expect(seen.status).toBe(204)
    // Missed the end: gets the remainder and the final event, then the stream ends.
    const late = await stream('/events?topic=job-1', { 'last-event-id': 'e1-0' })
    await late.ended
    expect(datas(late)).toEqual(['progress:{"pct":50}', 'progress:{"pct":100}'])
    // A brand new subscriber learns the topic ended from its final event.
    const fresh = await stream('/events?topic=job-1')
    await fresh.ended
    expect(fresh.text()).toBe(
      'retry: 2000\n\nevent: progress\nid: e1-2\ndata: {"pct":100}\n\nid: e1-2\n\n',
    )
  })

  it('keeps a multi-topic connection open until all its topics ended', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const s = await stream('/events?topic=x&topic=y')
    await s.waitForText('id: e1-0\n\n')
    await hub.publish({ topic: 'x', data: 'x done', close: true })
    await s.waitForEvents(1)
    await hub.publish({ topic: 'y', data: 'y live' })
    await s.waitForEvents(2)
    expect(s.isEnded()).toBe(false)
    await hub.publish({ topic: 'y', data: 'y done', close: true })
    await s.ended
    expect(datas(s)).toEqual(['message:x done', 'message:y live', 'message:y done'])
  })

  it('lets a browser-like EventSource end CLOSED with no retry loop', async () => {
    hub = await fixture.start({ epoch: 'e1', retryMs: 20 })
    // Every stream request reaches Hub.attach, whichever path (fast or node:http) took it.
    let requests = 0
    const target = hub.server.hub
    const attach = target.attach.bind(target)
    target.attach = (transport, params) => {
      requests++
      return attach(transport, params)
    }
    const es = new EventSource(`${hub.url}/events?topic=task`)
    fixture.track(es)
    const seen: string[] = []
    es.onmessage = (e) => seen.push(e.data)
    await waitFor(() => hub.server.hub.subscriberCount('task') === 1, 'subscribed')
    await hub.publish({ topic: 'task', data: '50%' })
    await hub.publish({ topic: 'task', data: '100%', close: true })
    await waitFor(() => es.readyState === EventSource.CLOSED, 'CLOSED')
    expect(seen).toEqual(['50%', '100%'])
    // One reconnect answered 204, then nothing more.
    expect(requests).toBe(2)
  })
})
