import { SignJWT } from 'jose'
import { afterEach, describe, expect, it, vi } from 'vitest'
import { faviconSvg } from '../../src/showcase/favicon.js'
import { TICKET_DEFAULTS } from '../../src/showcase/tickets.js'
import { hubFixture } from '../helpers/hub-server.js'

const fixture = hubFixture()
const KEY = 'k'.repeat(32)
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

afterEach(() => {
  vi.useRealTimers()
})

async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body,
  })
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as {
      error?: { code: string; message: string }
      ticket?: string
      expiresInMs?: number
    },
  }
}

async function ticket(url: string, headers: Record<string, string> = bearer(KEY)) {
  const answer = await post(`${url}/dashboard/ticket`, '', headers)
  expect(answer.status).toBe(200)
  return answer.json.ticket!
}

const feedNeedsTicket = {
  error: {
    code: 'ERR_SSE_UNAUTHORIZED',
    message:
      'The dashboard feed needs a ticket: POST /dashboard/ticket with `Authorization: Bearer <key>`, then GET /dashboard/events?ticket=<ticket> (the dashboard page does this once you enter the key).',
  },
}
const ticketRefused = {
  error: {
    code: 'ERR_SSE_UNAUTHORIZED',
    message:
      'This dashboard ticket is unknown, spent or expired (a ticket opens one feed within 30 s): POST /dashboard/ticket for another.',
  },
}

describe('web routes', () => {
  it('answers bad demo input with JSON 4xx', async () => {
    const hub = await fixture.start()
    expect((await post(`${hub.url}/demo/progress/start`, '{"id":"../x"}')).status).toBe(400)
    const notJson = await post(`${hub.url}/demo/progress/start`, 'nope')
    expect(notJson.status).toBe(400)
    expect(notJson.json.error?.code).toBe('ERR_SSE_BAD_REQUEST')
  })

  it('refuses the demos without the key on a hub with one', async () => {
    const hub = await fixture.start({ publishKey: KEY })
    const demoRefused = await post(`${hub.url}/demo/progress/start`, '{"id":"a"}')
    expect(demoRefused.status).toBe(401)
    expect(demoRefused.json.error?.code).toBe('ERR_SSE_UNAUTHORIZED')
    expect(demoRefused.json.error?.message).toMatch(/^The demos need the publish key/)
    // The chat demo's start is the API's POST /relays: the publisher rule.
    const relayRefused = await post(`${hub.url}/relays`, '{"id":"a","upstream":"default"}')
    expect(relayRefused.status).toBe(401)
    const ok = await post(`${hub.url}/demo/progress/start`, '{"id":"a"}', bearer(KEY))
    expect(ok.status).toBe(202)
  })

  it('trades the key, sent in a header, for a single-use ticket that opens the feed once', async () => {
    const hub = await fixture.start({ publishKey: KEY })
    const issued = await post(`${hub.url}/dashboard/ticket`, '', bearer(KEY))
    expect(issued.status).toBe(200)
    expect(issued.headers.get('cache-control')).toBe('no-store')
    expect(issued.json).toEqual({
      ticket: expect.stringMatching(/^[\w-]{43}$/),
      expiresInMs: 30_000,
    })
    const t = issued.json.ticket!
    const feed = await fixture.stream(`/dashboard/events?ticket=${t}`)
    expect(feed.status).toBe(200)
    expect(feed.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    const [stats] = await feed.waitForEvents(1)
    expect(stats!.event).toBe('stats')
    expect(JSON.parse(stats!.data)).toMatchObject({ stats: { connections: 0 }, topics: [] })
    // Spent: a URL that a proxy logged opens nothing.
    const again = await fetch(`${hub.url}/dashboard/events?ticket=${t}`)
    expect(again.status).toBe(401)
    expect(await again.json()).toEqual(ticketRefused)
    const forged = await fetch(`${hub.url}/dashboard/events?ticket=${'x'.repeat(43)}`)
    expect(await forged.json()).toEqual(ticketRefused)
  })

  it('refuses a ticket to a missing or wrong key (401) and to a token that may not publish * (403)', async () => {
    const secret = 'a-test-secret-that-is-at-least-32-bytes-long'
    const hub = await fixture.start({ publishKey: KEY, jwtSecret: secret })
    const token = (publish: string[]) =>
      new SignJWT({ ssehub: { publish, subscribe: [] } })
        .setProtectedHeader({ alg: 'HS256' })
        .sign(new TextEncoder().encode(secret))
    const message =
      'A dashboard ticket needs the publish key: send `Authorization: Bearer <key>` (the dashboard page does, once you enter the key).'
    const missing = await post(`${hub.url}/dashboard/ticket`, '')
    expect([missing.status, missing.json]).toEqual([
      401,
      { error: { code: 'ERR_SSE_UNAUTHORIZED', message } },
    ])
    // Not the key: verified as a token, which it is not.
    const wrong = await post(`${hub.url}/dashboard/ticket`, '', bearer('wrong-key'))
    expect([wrong.status, wrong.json.error?.code]).toEqual([401, 'ERR_SSE_UNAUTHORIZED'])
    const lesser = await post(`${hub.url}/dashboard/ticket`, '', bearer(await token(['news'])))
    expect(lesser.status).toBe(403)
    expect(lesser.json.error?.code).toBe('ERR_SSE_FORBIDDEN')
    expect(await ticket(hub.url, bearer(await token(['*'])))).toMatch(/^[\w-]{43}$/)
  })

  it('no longer takes the key in the URL: ?key= is refused; a tool may send it as a header', async () => {
    const hub = await fixture.start({ publishKey: KEY })
    for (const path of ['/dashboard/events', `/dashboard/events?key=${KEY}`]) {
      const refused = await fetch(hub.url + path)
      expect(refused.status).toBe(401)
      expect(await refused.json()).toEqual(feedNeedsTicket)
    }
    const tool = await fixture.stream('/dashboard/events', bearer(KEY))
    expect(tool.status).toBe(200)
  })

  it('refuses a ticket after 30 s', async () => {
    const hub = await fixture.start({ publishKey: KEY })
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() })
    const late = await ticket(hub.url)
    const inTime = await ticket(hub.url)
    vi.setSystemTime(Date.now() + TICKET_DEFAULTS.ttlMs - 1)
    expect((await fixture.stream(`/dashboard/events?ticket=${inTime}`)).status).toBe(200)
    vi.setSystemTime(Date.now() + 1)
    const expired = await fetch(`${hub.url}/dashboard/events?ticket=${late}`)
    expect(expired.status).toBe(401)
    expect(await expired.json()).toEqual(ticketRefused)
  })

  it('opens the feed to anyone on an open hub, with or without a ticket', async () => {
    const hub = await fixture.start()
    expect((await fixture.stream('/dashboard/events')).status).toBe(200)
    const t = await ticket(hub.url, {})
    expect((await fixture.stream(`/dashboard/events?ticket=${t}`)).status).toBe(200)
  })

  it('serves an SVG favicon at /favicon.ico, linked from the pages', async () => {
    const hub = await fixture.start({ publishKey: KEY })
    const icon = await fetch(`${hub.url}/favicon.ico`)
    expect(icon.status).toBe(200)
    expect(icon.headers.get('content-type')).toBe('image/svg+xml')
    expect(icon.headers.get('content-security-policy')).toBe(
      "default-src 'none'; style-src 'unsafe-inline'",
    )
    expect(await icon.text()).toBe(faviconSvg)
    expect(faviconSvg).not.toMatch(/script|on\w+=/i)
    expect((await fetch(`${hub.url}/favicon.ico`, { method: 'HEAD' })).status).toBe(200)
    for (const path of ['/', '/demo/chat', '/demo/progress', '/demo/ticker']) {
      const page = await fetch(hub.url + path)
      expect(page.headers.get('content-security-policy')).toContain("frame-ancestors 'none'")
      expect(await page.text()).toContain(
        '<link rel="icon" href="/favicon.ico" type="image/svg+xml">',
      )
    }
  })

  it('serves no dashboard, no demos and no favicon when they are off', async () => {
    const hub = await fixture.start({ dashboard: false, demos: false })
    expect((await fetch(`${hub.url}/`)).status).toBe(404)
    expect((await fetch(`${hub.url}/dashboard/events`)).status).toBe(404)
    expect((await post(`${hub.url}/dashboard/ticket`, '')).status).toBe(404)
    expect((await fetch(`${hub.url}/demo/chat`)).status).toBe(404)
    expect((await fetch(`${hub.url}/favicon.ico`)).status).toBe(404)
  })
})
