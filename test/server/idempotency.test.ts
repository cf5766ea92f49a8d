/**
 * Idempotent publishing over real HTTP (on each front): `Idempotency-Key` on `POST /publish`,
 * `idempotencyKey` per event in `/publish/batch` and in form bodies. A retry returns the first id
 * and nothing new reaches subscribers; another event under a used key is a 409.
 */
import { describe, expect, it } from 'vitest'
import { hubFixture } from '../helpers/hub-server.js'

const fixture = hubFixture()

interface Answer {
  status: number
  json: {
    id?: string
    localConnections?: number
    duplicate?: boolean
    results?: { id: string; localConnections: number; duplicate?: boolean }[]
    error?: { code: string; message: string }
  }
}

async function post(
  url: string,
  body: string,
  headers: Record<string, string> = {},
  type = 'application/json',
): Promise<Answer> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': type, ...headers },
    body,
  })
  return { status: response.status, json: (await response.json()) as Answer['json'] }
}

describe('idempotent publishing', () => {
  it('publishes a retried POST /publish once and answers every retry with the first id', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    const stream = await fixture.stream('/events?topic=a')
    const body = JSON.stringify({ topic: 'a', data: 'once' })
    const key = { 'idempotency-key': '0b7c1a52-4f0e-4a4b-9d57-3b5f7c0e9a11' }
    const first = await post(`${hub.url}/publish`, body, key)
    expect(first).toEqual({ status: 200, json: { id: 'e1-1', localConnections: 1 } })
    for (let i = 0; i < 4; i++) {
      expect(await post(`${hub.url}/publish`, body, key)).toEqual({
        status: 200,
        json: { id: 'e1-1', localConnections: 0, duplicate: true },
      })
    }
    // Concurrent retries under a new key: one event.
    const racing = await Promise.all(
      Array.from({ length: 5 }, () =>
        post(`${hub.url}/publish`, JSON.stringify({ topic: 'a', data: 'race' }), {
          'idempotency-key': 'race-1',
        }),
      ),
    )
    expect(new Set(racing.map((answer) => answer.json.id))).toEqual(new Set(['e1-2']))
    expect(racing.filter((answer) => answer.json.duplicate === true)).toHaveLength(4)
    await hub.publish({ topic: 'a', data: 'marker' })
    await stream.waitForText('data: marker\n\n')
    expect(stream.text()).toBe(
      'retry: 2000\n\nid: e1-0\n\nid: e1-1\ndata: once\n\nid: e1-2\ndata: race\n\nid: e1-3\ndata: marker\n\n',
    )
  })

  it('refuses another event under a used key (409) and bad keys (400), publishing nothing', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    const stream = await fixture.stream('/events?topic=a')
    await post(`${hub.url}/publish`, JSON.stringify({ topic: 'a', data: 'first' }), {
      'idempotency-key': 'k',
    })
    const conflict = await post(
      `${hub.url}/publish`,
      JSON.stringify({ topic: 'a', data: 'second' }),
      { 'idempotency-key': 'k' },
    )
    expect(conflict.status).toBe(409)
    expect(conflict.json.error).toMatchObject({ code: 'ERR_SSE_CONFLICT' })
    expect(conflict.json.error!.message).toMatch(/use a new key for each event/)
    for (const bad of ['has space', 'x'.repeat(201), 'caf\u00e9']) {
      const answer = await post(
        `${hub.url}/publish`,
        JSON.stringify({ topic: 'a', data: 'x', idempotencyKey: bad }),
      )
      expect(answer.status, bad).toBe(400)
      expect(answer.json.error!.code).toBe('ERR_SSE_INVALID_FIELD')
    }
    const mismatch = await post(
      `${hub.url}/publish`,
      JSON.stringify({ topic: 'a', data: 'x', idempotencyKey: 'one' }),
      { 'idempotency-key': 'two' },
    )
    expect(mismatch.status).toBe(400)
    expect(mismatch.json.error!.message).toMatch(/differ/)
    await hub.publish({ topic: 'a', data: 'marker' })
    await stream.waitForText('data: marker\n\n')
    expect(stream.text()).toBe(
      'retry: 2000\n\nid: e1-0\n\nid: e1-1\ndata: first\n\nid: e1-2\ndata: marker\n\n',
    )
  })

  it('takes a key per event in a batch and in a form body', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    const stream = await fixture.stream('/events?topic=a')
    const events = JSON.stringify([
      { topic: 'a', data: '1', idempotencyKey: 'b-1' },
      { topic: 'a', data: '2', idempotencyKey: 'b-2' },
    ])
    const first = await post(`${hub.url}/publish/batch`, events)
    expect(first.json.results).toEqual([
      { id: 'e1-1', localConnections: 1 },
      { id: 'e1-2', localConnections: 1 },
    ])
    // The whole batch retried: the same ids, nothing new.
    const again = await post(`${hub.url}/publish/batch`, events)
    expect(again.json.results).toEqual([
      { id: 'e1-1', localConnections: 0, duplicate: true },
      { id: 'e1-2', localConnections: 0, duplicate: true },
    ])
    const form = 'topic=a&data=3&idempotencyKey=f-1'
    const type = 'application/x-www-form-urlencoded'
    expect((await post(`${hub.url}/publish`, form, {}, type)).json).toEqual({
      id: 'e1-3',
      localConnections: 1,
    })
    expect((await post(`${hub.url}/publish`, form, {}, type)).json).toMatchObject({
      id: 'e1-3',
      duplicate: true,
    })
    await stream.waitForText('data: 3\n\n')
    expect(stream.events.map((event) => event.data)).toEqual(['1', '2', '3'])
  })
})
