/**
 * A publish with a field the API does not have is refused with 400, naming the closest field —
 * in JSON and form bodies, in a batch (with the event's index), and through the library.
 */
import { describe, expect, it } from 'vitest'
import { createHub } from '../../src/hub/hub.js'
import type { PublishInput } from '../../src/hub/types.js'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'

const fixture = hubFixture()

async function post(
  hub: TestHub,
  path: string,
  contentType: string,
  body: string,
): Promise<{ status: number; error: { code: string; message: string } | undefined }> {
  const response = await fetch(`${hub.url}${path}`, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
  })
  const json = (await response.json()) as { error?: { code: string; message: string } }
  return { status: response.status, error: json.error }
}

describe('unknown publish fields', () => {
  it('refuses a JSON body with a mistyped field, naming the closest one; nothing is published', async () => {
    const hub = await fixture.start({ epoch: 'e1' })
    const stream = await fixture.stream('/events?topic=a')
    await stream.waitForText('id: e1-0')
    const answer = await post(
      hub,
      '/publish',
      'application/json',
      '{"topic":"a","evnt":"x","data":1}',
    )
    expect(answer).toEqual({
      status: 400,
      error: {
        code: 'ERR_SSE_BAD_REQUEST',
        message: 'unknown field `evnt`; did you mean `event`?',
      },
    })
    expect((await hub.publish({ topic: 'a', data: 'after' })).status).toBe(200)
    await stream.waitForText('data: after\n')
    expect(stream.events.filter((e) => e.data !== '').map((e) => e.data)).toEqual(['after'])
  })

  it('refuses a form body the same way', async () => {
    const hub = await fixture.start()
    const answer = await post(
      hub,
      '/publish',
      'application/x-www-form-urlencoded',
      'topic=a&data=1&clientid=u1',
    )
    expect(answer.status).toBe(400)
    expect(answer.error?.message).toBe('unknown field `clientid`; did you mean `clientId`?')
  })

  it('lists the fields when none is close', async () => {
    const hub = await fixture.start()
    const answer = await post(
      hub,
      '/publish',
      'application/json',
      '{"topic":"a","data":1,"zzzzzzzz":2}',
    )
    expect(answer.status).toBe(400)
    expect(answer.error?.message).toBe(
      'unknown field `zzzzzzzz`; the fields are topic, clientId, all, event, data, retry, close, idempotencyKey.',
    )
  })

  it('names the event of a batch; one bad event publishes none', async () => {
    const hub = await fixture.start()
    const answer = await post(
      hub,
      '/publish/batch',
      'application/json',
      JSON.stringify([
        { topic: 'a', data: 1 },
        { topic: 'a', data: 2 },
        { topic: 'a', data: 3, retyr: 5 },
      ]),
    )
    expect(answer.status).toBe(400)
    expect(answer.error?.message).toBe('events[2]: unknown field `retyr`; did you mean `retry`?')
  })

  it('refuses it through the library too', async () => {
    const hub = createHub({ heartbeatMs: null })
    try {
      const input = { topic: 'a', data: 1, tpoic: 'b' } as PublishInput
      await expect(hub.publish(input)).rejects.toThrow(
        'unknown field `tpoic`; did you mean `topic`?',
      )
    } finally {
      await hub.close()
    }
  })
})
