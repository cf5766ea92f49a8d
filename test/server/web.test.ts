import { describe, expect, it } from 'vitest'
import { hubFixture } from '../helpers/hub-server.js'

const fixture = hubFixture()

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  })
  return {
    status: response.status,
    json: (await response.json()) as { error?: { code: string; message: string } },
  }
}

describe('web routes', () => {
  it('answers bad demo input with JSON 4xx', async () => {
    const hub = await fixture.start()
    expect((await post(`${hub.url}/demo/progress/start`, '{"id":"../x"}')).status).toBe(400)
    const notJson = await post(`${hub.url}/demo/chat/start`, 'nope')
    expect(notJson.status).toBe(400)
    expect(notJson.json.error?.code).toBe('ERR_SSE_BAD_REQUEST')
  })

  it('refuses the dashboard feed and the demos without the key on a hub with one', async () => {
    const key = 'k'.repeat(32)
    const hub = await fixture.start({ publishKey: key })
    const feedRefused = await fetch(`${hub.url}/dashboard/events`)
    expect(feedRefused.status).toBe(401)
    expect(await feedRefused.json()).toEqual({
      error: {
        code: 'ERR_SSE_UNAUTHORIZED',
        message: 'The dashboard feed needs the publish key: enter it on the dashboard page.',
      },
    })
    const demoRefused = await post(`${hub.url}/demo/chat/start`, '{"id":"a"}')
    expect(demoRefused.status).toBe(401)
    expect(demoRefused.json.error?.code).toBe('ERR_SSE_UNAUTHORIZED')
    expect(demoRefused.json.error?.message).toMatch(/^The demos need the publish key/)
    const ok = await post(`${hub.url}/demo/progress/start`, '{"id":"a"}', {
      authorization: `Bearer ${key}`,
    })
    expect(ok.status).toBe(202)
    const feed = fixture.track(new AbortController() as AbortController & { close(): void })
    feed.close = () => feed.abort()
    const response = await fetch(`${hub.url}/dashboard/events?key=${key}`, { signal: feed.signal })
    expect(response.status).toBe(200)
    expect(response.headers.get('content-type')).toContain('text/event-stream')
  })

  it('serves no dashboard and no demos when they are off', async () => {
    const hub = await fixture.start({ dashboard: false, demos: false })
    expect((await fetch(`${hub.url}/`)).status).toBe(404)
    expect((await fetch(`${hub.url}/dashboard/events`)).status).toBe(404)
    expect((await fetch(`${hub.url}/demo/chat`)).status).toBe(404)
  })
})
