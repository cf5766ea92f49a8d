import { SignJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import type { AuthRefusal } from '../../src/server/index.js'
import { hubFixture } from '../helpers/hub-server.js'

const secret = 'a-test-secret-that-is-at-least-32-bytes-long'

function token(publish: string[]): Promise<string> {
  return new SignJWT({ ssehub: { publish, subscribe: [] } })
    .setProtectedHeader({ alg: 'HS256' })
    .sign(new TextEncoder().encode(secret))
}

const fixture = hubFixture()

describe('onAuthRefused', () => {
  it('hears every 401 and 403, on the API and the mounted parts, without the query', async () => {
    const refusals: AuthRefusal[] = []
    const hub = await fixture.start({
      publishKey: 'the-key',
      jwtSecret: secret,
      privateTopics: ['private/*'],
      onAuthRefused: (refusal) => refusals.push(refusal),
    })
    const lesser = await token(['a'])
    const send = async (
      method: string,
      path: string,
      headers: Record<string, string> = {},
      body?: string,
    ): Promise<number> => {
      const response = await fetch(hub.url + path, {
        method,
        headers: { 'content-type': 'application/json', ...headers },
        ...(body === undefined ? {} : { body }),
      })
      await response.body?.cancel()
      return response.status
    }
    // The fast front's publish, a token's rights, the stream's token in the query, the operator
    // rule, and a mounted part's (the dashboard) operator rule.
    expect(await send('POST', '/publish', {}, '{"topic":"a","data":"x"}')).toBe(401)
    expect(
      await send(
        'POST',
        '/publish',
        { authorization: `Bearer ${lesser}` },
        '{"topic":"b","data":"x"}',
      ),
    ).toBe(403)
    expect(await send('GET', '/events?topic=private/x&token=not-a-jwt')).toBe(401)
    expect(await send('DELETE', '/clients/u1', { authorization: `Bearer ${lesser}` })).toBe(403)
    expect(await send('POST', '/dashboard/ticket?token=secret-in-query')).toBe(401)
    // Not refusals for want of credentials: not heard.
    expect(await send('POST', '/publish', { authorization: 'Bearer the-key' }, '{')).toBe(400)
    expect(await send('GET', '/nope')).toBe(404)
    expect(refusals.map((r) => `${r.status} ${r.code} ${r.method} ${r.path}`)).toEqual([
      '401 ERR_SSE_UNAUTHORIZED POST /publish',
      '403 ERR_SSE_FORBIDDEN POST /publish',
      '401 ERR_SSE_UNAUTHORIZED GET /events',
      '403 ERR_SSE_FORBIDDEN DELETE /clients/u1',
      '401 ERR_SSE_UNAUTHORIZED POST /dashboard/ticket',
    ])
    for (const refusal of refusals) {
      expect(refusal.remoteAddress).toBe('127.0.0.1')
      expect(refusal.message).not.toBe('')
    }
  })

  it("names the client a trusted proxy forwarded, and reports the hook's own failure as an error", async () => {
    const refusals: AuthRefusal[] = []
    const hub = await fixture.start({
      publishKey: 'the-key',
      trustProxy: ['loopback'],
      onAuthRefused: (refusal) => {
        refusals.push(refusal)
        throw new Error('the hook broke')
      },
    })
    const errors: Error[] = []
    hub.server.hub.on('error', (error) => errors.push(error))
    const response = await fetch(`${hub.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '203.0.113.9' },
      body: '{"topic":"a","data":"x"}',
    })
    expect(response.status).toBe(401)
    expect(refusals.map((r) => r.remoteAddress)).toEqual(['203.0.113.9'])
    expect(errors.map((error) => error.message)).toEqual(['the hook broke'])
  })

  it('is checked at construction', async () => {
    await expect(fixture.start({ onAuthRefused: 'log' as unknown as () => void })).rejects.toThrow(
      /Expected `onAuthRefused` to be a function or null/,
    )
  })
})
