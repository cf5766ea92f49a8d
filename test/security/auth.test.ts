import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { exportJWK, exportSPKI, generateKeyPair, SignJWT } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import type { CloseReason } from '../../src/index.js'
import { hubFixture, type TestHub } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'

const secret = 'a-test-secret-that-is-at-least-32-bytes-long'
const key = new TextEncoder().encode(secret)

interface Claims {
  sub?: string
  publish?: string[]
  subscribe?: string[]
  expiresIn?: number | string
  iat?: number
}

async function hs256(claims: Claims, signWith: Uint8Array = key): Promise<string> {
  const jwt = new SignJWT({
    ssehub: { publish: claims.publish ?? [], subscribe: claims.subscribe ?? [] },
  })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt(claims.iat)
  if (claims.sub !== undefined) jwt.setSubject(claims.sub)
  if (claims.expiresIn !== undefined)
    jwt.setExpirationTime(
      typeof claims.expiresIn === 'number' ? claims.expiresIn : claims.expiresIn,
    )
  return jwt.sign(signWith)
}

const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` })

let hub: TestHub
const fixture = hubFixture()
const stream = fixture.stream.bind(fixture)
let jwks: Server | undefined
afterEach(async () => {
  await new Promise<void>((resolve) => (jwks ? jwks.close(() => resolve()) : resolve()))
  jwks = undefined
})

async function status(
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; code?: string; message?: string }> {
  const response = await fetch(hub.url + path, { headers })
  if (response.status === 200) {
    await response.body?.cancel()
    return { status: 200 }
  }
  const text = await response.text()
  const error =
    text === ''
      ? undefined
      : (JSON.parse(text) as { error: { code: string; message: string } }).error
  return {
    status: response.status,
    ...(error === undefined ? {} : { code: error.code, message: error.message }),
  }
}

describe('JWT publish', () => {
  it('needs a token (or the publish key) and checks its publish selectors', async () => {
    hub = await fixture.start({ jwtSecret: secret, publishKey: 'operator' })
    const s = await stream('/events?topic=news/a&topic=sport')
    await s.waitForText('id: ')
    expect((await hub.publish({ topic: 'news/a', data: 'x' })).status).toBe(401)
    const forged = await hs256(
      { publish: ['*'] },
      new TextEncoder().encode('another-secret-that-is-32-bytes-long!!'),
    )
    const bad = await hub.publish({ topic: 'news/a', data: 'x' }, bearer(forged))
    expect(bad.status).toBe(401)
    expect(bad.json.error.message).toMatch(/signature/)
    const expired = await hub.publish(
      { topic: 'news/a', data: 'x' },
      bearer(await hs256({ publish: ['*'], expiresIn: Math.floor(Date.now() / 1000) - 10 })),
    )
    expect(expired.status).toBe(401)
    expect(expired.json.error.message).toMatch(/expired/)
    const newsWriter = await hs256({ sub: 'writer', publish: ['news/*'] })
    expect((await hub.publish({ topic: 'news/a', data: 'ok' }, bearer(newsWriter))).status).toBe(
      200,
    )
    const wrongTopic = await hub.publish(
      { topic: ['news/a', 'sport'], data: 'x' },
      bearer(newsWriter),
    )
    expect(wrongTopic.status).toBe(403)
    expect(wrongTopic.json.error).toMatchObject({ code: 'ERR_SSE_FORBIDDEN' })
    expect(wrongTopic.json.error.message).toMatch(/"sport"/)
    expect((await hub.publish({ clientId: 'u', data: 'x' }, bearer(newsWriter))).status).toBe(403)
    expect((await hub.publish({ all: true, data: 'x' }, bearer(newsWriter))).status).toBe(403)
    expect(
      (await hub.publish({ all: true, data: 'all ok' }, bearer(await hs256({ publish: ['*'] }))))
        .status,
    ).toBe(200)
    // The publish key stays an all-powerful operator key.
    expect((await hub.publish({ topic: 'sport', data: 'key ok' }, bearer('operator'))).status).toBe(
      200,
    )
    await s.waitForEvents(3)
    expect(s.events.map((e) => e.data)).toEqual(['ok', 'all ok', 'key ok'])
  })
})

describe('JWT subscribe', () => {
  it('keeps public topics open, needs a matching token for private ones, and fixes the client id to sub', async () => {
    hub = await fixture.start({ jwtSecret: secret, privateTopics: ['private/*', 'admin'] })
    expect((await status('/events?topic=public')).status).toBe(200)
    expect(await status('/events?topic=private/x')).toMatchObject({
      status: 401,
      code: 'ERR_SSE_UNAUTHORIZED',
    })
    expect(await status('/events?topic=admin')).toMatchObject({ status: 401 })
    const reader = await hs256({ sub: 'alice', subscribe: ['private/alice/*'] })
    expect(await status('/events?topic=private/bob/inbox', bearer(reader))).toMatchObject({
      status: 403,
      code: 'ERR_SSE_FORBIDDEN',
    })
    expect((await status('/events?topic=private/alice/inbox', bearer(reader))).status).toBe(200)
    // Nobody listens as another user.
    expect(await status('/events?clientId=alice')).toMatchObject({ status: 401 })
    const wrong = await status('/events?clientId=bob', bearer(reader))
    expect(wrong).toMatchObject({ status: 403 })
    expect(wrong.message).toMatch(/"alice", not "bob"/)
    expect(
      (
        await status(
          '/events?topic=x',
          bearer(
            await hs256({ sub: 'alice', subscribe: [] }, new TextEncoder().encode('x'.repeat(40))),
          ),
        )
      ).status,
    ).toBe(401)
    // The token's sub becomes the client id: messages to alice reach this stream.
    const s = await stream('/events?topic=private/alice/inbox', bearer(reader))
    await s.waitForText('id: ')
    expect(hub.server.hub.clientConnectionCount('alice')).toBe(1)
  })

  it('accepts the token from a cookie and from the token query parameter', async () => {
    hub = await fixture.start({ jwtSecret: secret, privateTopics: ['p'], tokenCookie: 'sess' })
    const token = await hs256({ sub: 'u1', subscribe: ['p'] })
    expect((await status('/events?topic=p', { cookie: `a=b; sess=${token}` })).status).toBe(200)
    expect((await status(`/events?topic=p&token=${token}`)).status).toBe(200)
    expect((await status('/events?topic=p', { cookie: `other=${token}` })).status).toBe(401)
  })

  it('refuses query tokens when allowQueryToken is false', async () => {
    hub = await fixture.start({ jwtSecret: secret, privateTopics: ['p'], allowQueryToken: false })
    const token = await hs256({ sub: 'u1', subscribe: ['p'] })
    expect((await status(`/events?topic=p&token=${token}`)).status).toBe(401)
  })

  it('ends a stream when its token expires; a fresh token resumes by Last-Event-ID', async () => {
    hub = await fixture.start({ jwtSecret: secret, privateTopics: ['p'], epoch: 'e1' })
    const reasons: CloseReason[] = []
    hub.server.hub.on('closed', (_c, reason) => reasons.push(reason))
    const shortLived = await hs256({
      sub: 'u1',
      subscribe: ['p'],
      expiresIn: Math.floor(Date.now() / 1000) + 2,
    })
    const s = await stream('/events?topic=p', bearer(shortLived))
    await s.waitForText('id: e1-0')
    const operator = await hs256({ publish: ['*'] })
    await hub.publish({ topic: 'p', data: 'one' }, bearer(operator))
    await s.waitForEvents(1)
    await s.ended
    expect(reasons).toEqual(['expired'])
    await hub.publish({ topic: 'p', data: 'two' }, bearer(operator))
    const fresh = await hs256({ sub: 'u1', subscribe: ['p'], expiresIn: '1h' })
    const again = await stream('/events?topic=p', {
      ...bearer(fresh),
      'last-event-id': s.lastEventId()!,
    })
    await again.waitForEvents(1)
    expect(again.events.map((e) => e.data)).toEqual(['two'])
  }, 10_000)

  it('revokes a client id: its streams end and its older tokens are refused', async () => {
    hub = await fixture.start({ jwtSecret: secret, publishKey: 'operator' })
    const reasons: CloseReason[] = []
    hub.server.hub.on('closed', (_c, reason) => reasons.push(reason))
    const old = await hs256({ sub: 'mallory' })
    const s = await stream('/events?clientId=mallory', bearer(old))
    await s.waitForText('id: ')
    expect((await fetch(`${hub.url}/clients/mallory/revoke`, { method: 'POST' })).status).toBe(401)
    const revoked = await fetch(`${hub.url}/clients/mallory/revoke`, {
      method: 'POST',
      headers: bearer('operator'),
    })
    expect(revoked.status).toBe(204)
    await s.ended
    expect(reasons).toEqual(['revoked'])
    expect(await status('/events?clientId=mallory', bearer(old))).toMatchObject({ status: 401 })
    const reissued = await hs256({ sub: 'mallory', iat: Math.floor(Date.now() / 1000) + 1 })
    expect((await status('/events?clientId=mallory', bearer(reissued))).status).toBe(200)
  })
})

describe('JWT keys', () => {
  it('verifies RS256 tokens with a PEM public key, and ES256 tokens from a JWKS URL', async () => {
    const rsa = await generateKeyPair('RS256')
    hub = await fixture.start({
      jwtPublicKey: await exportSPKI(rsa.publicKey),
      privateTopics: ['p'],
    })
    const rs = await new SignJWT({ ssehub: { subscribe: ['p'] } })
      .setProtectedHeader({ alg: 'RS256' })
      .setSubject('u')
      .sign(rsa.privateKey)
    expect((await status('/events?topic=p', bearer(rs))).status).toBe(200)
    await hub.close()

    const ec = await generateKeyPair('ES256')
    const jwk = { ...(await exportJWK(ec.publicKey)), kid: 'k1', alg: 'ES256', use: 'sig' }
    const server = createServer((_req, res) =>
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ keys: [jwk] })),
    )
    jwks = server
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    hub = await fixture.start({
      jwtJwksUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/jwks.json`,
      privateTopics: ['p'],
    })
    const es = await new SignJWT({ ssehub: { subscribe: ['p'] } })
      .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
      .setSubject('u')
      .sign(ec.privateKey)
    expect((await status('/events?topic=p', bearer(es))).status).toBe(200)
    expect((await status('/events?topic=p', bearer(rs))).status).toBe(401)
  })

  it('refuses a short HS256 secret and several key sources at once', async () => {
    const { createHubServer } = await import('../../src/server/server.js')
    expect(() => createHubServer({ jwtSecret: 'short' })).toThrow(/32 bytes/)
    expect(() =>
      createHubServer({ jwtSecret: secret, jwtJwksUrl: 'http://127.0.0.1:1/x' }),
    ).toThrow(/one of/)
    hub = await fixture.start()
  })
})

describe('limits', () => {
  it('rate-limits publishes per publisher with 429 and Retry-After; the publish key is exempt', async () => {
    // Anonymous publishers are limited when they may come from a public address.
    hub = await fixture.start({
      publishRatePerSecond: 1,
      publishBurst: 3,
      allowAnonymousPublish: true,
    })
    for (let i = 0; i < 3; i++)
      expect((await hub.publish({ topic: 'a', data: String(i) })).status).toBe(200)
    const limited = await fetch(`${hub.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ topic: 'a', data: 'x' }),
    })
    expect(limited.status).toBe(429)
    expect(limited.headers.get('retry-after')).toBe('1')
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe(
      'ERR_SSE_RATE_LIMITED',
    )
    await hub.close()
    hub = await fixture.start({ publishRatePerSecond: 1, publishBurst: 1, publishKey: 'k' })
    for (let i = 0; i < 5; i++)
      expect((await hub.publish({ topic: 'a', data: 'x' }, bearer('k'))).status).toBe(200)
  })

  it('limits connections per IP with 429', async () => {
    hub = await fixture.start({ maxConnectionsPerIp: 2 })
    await stream('/events?topic=a')
    await stream('/events?topic=a')
    expect(await status('/events?topic=a')).toMatchObject({
      status: 429,
      code: 'ERR_SSE_RATE_LIMITED',
    })
    await waitFor(() => hub.server.hub.stats().rejections === 1, 'rejection counted')
  })
})
