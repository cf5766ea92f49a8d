import { describe, expect, it } from 'vitest'
import { EventSource } from 'eventsource'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'

let hub: TestHub
const fixture = hubFixture()
const stream = fixture.stream.bind(fixture)

describe('GET /events', () => {
  it('answers 200 text/event-stream with the stream headers and flushes retry + an id-only frame at once', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const s = await stream('/events?topic=news')
    expect(s.status).toBe(200)
    expect(s.headers['content-type']).toBe('text/event-stream')
    expect(s.headers['cache-control']).toBe('no-cache, no-transform')
    expect(s.headers['x-accel-buffering']).toBe('no')
    await s.waitForText('id: e1-0\n\n')
    expect(s.text()).toBe('retry: 2000\n\nid: e1-0\n\n')
  })

  it('needs a topic or a client id (400 with a JSON error)', async () => {
    hub = await fixture.start()
    const response = await fetch(`${hub.url}/events`)
    expect(response.status).toBe(400)
    const body = (await response.json()) as { error: { code: string; message: string } }
    expect(body.error.code).toBe('ERR_SSE_BAD_REQUEST')
    expect(body.error.message).toMatch(/topic or a client id/)
  })

  it('rejects topics with control characters, reserved names and too many topics', async () => {
    hub = await fixture.start({ maxTopicsPerConnection: 2 })
    for (const query of [
      'topic=a%0Ab',
      'topic=%40all',
      'topic=a&topic=b&topic=c',
      'topic=',
      'clientId=x%0D',
    ]) {
      const response = await fetch(`${hub.url}/events?${query}`)
      expect(response.status, query).toBe(400)
      expect(((await response.json()) as { error: { code: string } }).error.code).toMatch(
        /^ERR_SSE_/,
      )
    }
  })

  it('answers 405 for a wrong method', async () => {
    hub = await fixture.start()
    const response = await fetch(`${hub.url}/events?topic=a`, { method: 'PUT' })
    expect(response.status).toBe(405)
    expect(response.headers.get('allow')).toBe('GET')
  })
})

describe('POST /publish', () => {
  it('delivers to topic subscribers with exact bytes, multi-line data split into data: lines', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const a = await stream('/events?topic=news')
    const b = await stream('/events?topic=sport')
    await a.waitForText('id: e1-0\n\n')
    await b.waitForText('id: e1-0\n\n')
    const result = await hub.publish({
      topic: 'news',
      event: 'headline',
      data: 'one\ntwo\r\nthree\rfour',
    })
    expect(result).toEqual({ status: 200, json: { id: 'e1-1', localConnections: 1 } })
    await a.waitForText('four\n\n')
    expect(a.text()).toBe(
      'retry: 2000\n\nid: e1-0\n\nevent: headline\nid: e1-1\ndata: one\ndata: two\ndata: three\ndata: four\n\n',
    )
    expect(a.events).toEqual([{ event: 'headline', id: 'e1-1', data: 'one\ntwo\nthree\nfour' }])
    expect(b.text()).toBe('retry: 2000\n\nid: e1-0\n\n')
  })

  it('JSON-encodes non-string data, sends retry, and targets a topic array, a client id and all', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const news = await stream('/events?topic=news')
    const user = await stream('/events?clientId=u1')
    const both = await stream('/events?topic=news&topic=sport&clientId=u2')
    for (const s of [news, user, both]) await s.waitForText('id: e1-0\n\n')
    expect(
      (await hub.publish({ topic: ['news', 'sport'], data: { a: [1, 2] }, retry: 500 })).json,
    ).toEqual({ id: 'e1-1', localConnections: 2 })
    expect((await hub.publish({ clientId: 'u1', data: 42 })).json).toEqual({
      id: 'e1-2',
      localConnections: 1,
    })
    expect((await hub.publish({ all: true, data: null })).json).toEqual({
      id: 'e1-3',
      localConnections: 3,
    })
    await news.waitForEvents(2)
    await user.waitForEvents(2)
    await both.waitForEvents(2)
    expect(news.events.map((e) => [e.id, e.data])).toEqual([
      ['e1-1', '{"a":[1,2]}'],
      ['e1-3', 'null'],
    ])
    expect(user.events.map((e) => [e.id, e.data])).toEqual([
      ['e1-2', '42'],
      ['e1-3', 'null'],
    ])
    // A connection matching two topics of one publish gets it once.
    expect(both.events.map((e) => [e.id, e.data])).toEqual([
      ['e1-1', '{"a":[1,2]}'],
      ['e1-3', 'null'],
    ])
    expect(news.text()).toContain('id: e1-1\nretry: 500\ndata: {"a":[1,2]}\n\n')
  })

  it('accepts form-encoded bodies (what curl -d sends)', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const s = await stream('/events?topic=a&topic=b')
    await s.waitForText('id: e1-0\n\n')
    const response = await fetch(`${hub.url}/publish`, {
      method: 'POST',
      body: new URLSearchParams([
        ['topic', 'a'],
        ['topic', 'b'],
        ['event', 'ping'],
        ['data', 'x y'],
        ['retry', '10'],
      ]),
    })
    expect(response.status).toBe(200)
    expect(await response.json()).toEqual({ id: 'e1-1', localConnections: 1 })
    await s.waitForEvents(1)
    expect(s.text()).toContain('event: ping\nid: e1-1\nretry: 10\ndata: x y\n\n')
  })

  it('refuses bad input with 400/413/415/405 and a JSON body that says what to do, publishing nothing', async () => {
    hub = await fixture.start({ epoch: 'e1', maxBodyBytes: 1000 })
    const s = await stream('/events?topic=news')
    await s.waitForText('id: e1-0\n\n')
    const cases: [unknown, number, RegExp][] = [
      [{ data: 'x' }, 400, /target/],
      [{ topic: 'news' }, 400, /data/],
      [{ topic: 5, data: 'x' }, 400, /topic/],
      [{ topic: ['ok', 7], data: 'x' }, 400, /topic/],
      [{ topic: 'news', data: 'x', event: 'a\nb' }, 400, /event/],
      [{ topic: 'news', data: 'x', event: 'ssehub.reset' }, 400, /reserved/],
      [{ topic: 'news', data: 'x', retry: -1 }, 400, /retry/],
      [{ topic: 'news', data: 'x', retry: '5' }, 400, /retry/],
      [{ topic: 'news', data: 'x', all: 'yes' }, 400, /all/],
      [{ clientId: 'u', data: 'x', close: true }, 400, /close/],
      ['[1,2]', 400, /object/],
      ['{"topic":', 400, /JSON/],
      [{ topic: 'news', data: 'x'.repeat(2000) }, 413, /larger than 1000 bytes/],
    ]
    for (const [body, status, message] of cases) {
      const result = await hub.publish(body)
      expect(result.status, JSON.stringify(body).slice(0, 60)).toBe(status)
      expect(result.json.error.message).toMatch(message)
      expect(result.json.error.code).toMatch(/^ERR_SSE_/)
    }
    const text = await fetch(`${hub.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: 'hi',
    })
    expect(text.status).toBe(415)
    const get = await fetch(`${hub.url}/publish`)
    expect(get.status).toBe(405)
    // Nothing reached the subscriber, and the next publish gets the next id.
    expect((await hub.publish({ topic: 'news', data: 'ok' })).json.id).toBe('e1-1')
    await s.waitForEvents(1)
    expect(s.events.map((e) => e.data)).toEqual(['ok'])
  })

  it('never lets data inject a field or an event', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const s = await stream('/events?topic=t')
    await s.waitForText('id: e1-0\n\n')
    await hub.publish({
      topic: 't',
      data: 'a\n\ndata: injected\nevent: evil\nid: 999\r\n\r\nretry: 1',
    })
    await s.waitForEvents(1)
    await hub.publish({ topic: 't', data: 'end' })
    await s.waitForEvents(2)
    expect(s.events).toEqual([
      {
        event: undefined,
        id: 'e1-1',
        data: 'a\n\ndata: injected\nevent: evil\nid: 999\n\nretry: 1',
      },
      { event: undefined, id: 'e1-2', data: 'end' },
    ])
  })

  it('is read the same way by the eventsource package (an independent client)', async () => {
    hub = await fixture.start({ epoch: 'e1' })
    const received: { type: string; data: string; lastEventId: string }[] = []
    const es = new EventSource(`${hub.url}/events?topic=news`)
    fixture.track(es)
    es.addEventListener('headline', (e) =>
      received.push({ type: e.type, data: e.data, lastEventId: e.lastEventId }),
    )
    es.onmessage = (e) => received.push({ type: e.type, data: e.data, lastEventId: e.lastEventId })
    await waitFor(
      () => hub.server.hub.subscriberCount('news') === 1 && es.readyState === EventSource.OPEN,
      'open',
    )
    await hub.publish({ topic: 'news', event: 'headline', data: 'a\nb' })
    await hub.publish({ topic: 'news', data: { n: 1 } })
    await waitFor(() => received.length === 2, 'two events')
    expect(received).toEqual([
      { type: 'headline', data: 'a\nb', lastEventId: 'e1-1' },
      { type: 'message', data: '{"n":1}', lastEventId: 'e1-2' },
    ])
  })
})

describe('publish key', () => {
  it('requires Authorization: Bearer <key> on publish, DELETE /clients and GET /clients', async () => {
    hub = await fixture.start({ publishKey: 's3cret' })
    for (const headers of [{}, { authorization: 'Bearer wrong' }, { authorization: 's3cret' }]) {
      const result = await hub.publish({ topic: 'a', data: 'x' }, headers)
      expect(result.status).toBe(401)
      expect(result.json.error.code).toBe('ERR_SSE_UNAUTHORIZED')
    }
    expect(
      (await hub.publish({ topic: 'a', data: 'x' }, { authorization: 'Bearer s3cret' })).status,
    ).toBe(200)
    expect((await fetch(`${hub.url}/clients/u1`, { method: 'DELETE' })).status).toBe(401)
    expect((await fetch(`${hub.url}/clients`)).status).toBe(401)
    expect(
      (await fetch(`${hub.url}/clients`, { headers: { authorization: 'Bearer s3cret' } })).status,
    ).toBe(200)
    // Subscribing stays open to everyone.
    const s = await stream('/events?topic=a')
    expect(s.status).toBe(200)
  })

  it('refuses to listen on a non-loopback address without a key unless anonymous publish is allowed', async () => {
    const { createHubServer } = await import('../../src/server/server.js')
    const open = createHubServer({ heartbeatMs: null })
    await expect(open.listen(0, '0.0.0.0')).rejects.toThrow(/--publish-key/)
    await open.close()
    const allowed = createHubServer({ heartbeatMs: null, allowAnonymousPublish: true })
    const address = await allowed.listen(0, '0.0.0.0')
    expect(address.port).toBeGreaterThan(0)
    await allowed.close()
    hub = await fixture.start()
  })
})

describe('DELETE /clients/{clientId}', () => {
  it('ends every connection of the client (204) and answers 404 for an unknown client', async () => {
    hub = await fixture.start()
    const tab1 = await stream('/events?clientId=u%2F1')
    const tab2 = await stream('/events?clientId=u%2F1&topic=news')
    const other = await stream('/events?clientId=u2')
    await waitFor(
      () =>
        hub.server.hub.clientConnectionCount('u/1') === 2 &&
        hub.server.hub.clientConnectionCount('u2') === 1,
      'connections',
    )
    const response = await fetch(`${hub.url}/clients/u%2F1`, { method: 'DELETE' })
    expect(response.status).toBe(204)
    await tab1.ended
    await tab2.ended
    expect(other.isEnded()).toBe(false)
    expect(hub.server.hub.stats()).toMatchObject({ connections: 1, clientIds: 1, topics: 0 })
    expect((await fetch(`${hub.url}/clients/u%2F1`, { method: 'DELETE' })).status).toBe(404)
  })
})
