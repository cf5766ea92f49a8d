/**
 * The relay as an HTTP feature of the hub: `POST /relays` starts one generation per id from a
 * configured upstream (a local fake OpenAI-compatible server here), viewers watch `relay/<id>`
 * from the start, `POST /relays/<id>/abort` stops it for everyone, and the limits end it with a
 * reason. Real HTTP on both sides.
 */
import { SignJWT } from 'jose'
import { afterEach, describe, expect, it } from 'vitest'
import { startFakeLlm, type FakeLlm } from '../helpers/fake-llm.js'
import { hubFixture, type TestHub, type TestHubOptions } from '../helpers/hub-server.js'
import type { RawStream } from '../helpers/raw-stream.js'
import { relayFinal, relayText } from '../helpers/relay-viewer.js'
import { waitFor } from '../helpers/wait.js'

const fixture = hubFixture()
let llm: FakeLlm | undefined
afterEach(async () => {
  await llm?.close()
  llm = undefined
})

// Leading spaces, a newline and a multi-byte character: the text must come back byte for byte.
const TOKENS = ['Server', '-Sent', ' Events', ' push', ' text.', '\n', 'Line', ' two', ' ✓', '.']
const TEXT = TOKENS.join('')

async function hubWithLlm(
  llmOptions: Parameters<typeof startFakeLlm>[0],
  options: TestHubOptions = {},
): Promise<TestHub> {
  llm = await startFakeLlm(llmOptions)
  return fixture.start({
    relayUpstreams: { default: { url: llm.url, apiKey: 'sk-test', model: 'fake-model' } },
    ...options,
  })
}

async function post(
  hub: TestHub,
  path: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; json: any }> {
  const response = await fetch(hub.url + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  })
  const text = await response.text()
  return { status: response.status, json: text === '' ? null : JSON.parse(text) }
}

const start = (hub: TestHub, id: string, headers: Record<string, string> = {}) =>
  post(
    hub,
    '/relays',
    { id, upstream: 'default', body: { messages: [{ role: 'user', content: 'Hi' }] } },
    headers,
  )

/** A viewer of `relay/<id>` from the start (or from `lastEventId`). */
function watch(hub: TestHub, id: string, headers: Record<string, string> = {}): Promise<RawStream> {
  return fixture.stream(`/events?from=start&topic=${encodeURIComponent(`relay/${id}`)}`, headers)
}

describe('POST /relays', () => {
  it('one id, two starts, three viewers: one upstream request, and every viewer gets its text exactly', async () => {
    const hub = await hubWithLlm({ tokens: TOKENS, delayMs: 30 })
    const first = await start(hub, 'q1')
    expect(first).toEqual({
      status: 202,
      json: { id: 'q1', topic: 'relay/q1', started: true, state: 'open' },
    })
    const early = await watch(hub, 'q1')
    // A second tab asks for the same generation: it joins, nothing new starts.
    const second = await start(hub, 'q1')
    expect(second).toEqual({
      status: 200,
      json: { id: 'q1', topic: 'relay/q1', started: false, state: 'open' },
    })
    const dropping = await watch(hub, 'q1')
    await waitFor(() => relayText(early).length >= TEXT.length / 2, 'half the answer')
    // A viewer that joins after half the tokens gets the whole text so far, then the rest.
    const late = await watch(hub, 'q1')
    // A viewer drops mid-answer and resumes with Last-Event-ID: no token twice.
    await waitFor(() => dropping.events.length >= 3, 'tokens on the dropping viewer')
    dropping.close()
    const lastId = dropping.lastEventId()!
    const before = relayText(dropping)
    const resumed = await fixture.stream(`/events?topic=${encodeURIComponent('relay/q1')}`, {
      'last-event-id': lastId,
    })
    for (const stream of [early, late, resumed]) await stream.ended
    expect(relayText(early)).toBe(TEXT)
    expect(relayText(late)).toBe(TEXT)
    expect(before + relayText(resumed)).toBe(TEXT)
    for (const stream of [early, late]) {
      expect(stream.events[0]).toMatchObject({
        event: 'start',
        data: '{"id":"q1","upstream":"default"}',
      })
      expect(relayFinal(stream)).toMatchObject({
        event: 'done',
        data: JSON.stringify({ outcome: 'done', tokens: TOKENS.length }),
      })
    }
    expect(llm!.requests).toHaveLength(1)
    expect(llm!.requests[0]).toMatchObject({
      url: '/v1/chat/completions',
      authorization: 'Bearer sk-test',
      body: { model: 'fake-model', stream: true, messages: [{ role: 'user', content: 'Hi' }] },
      finished: true,
      cancelled: false,
    })
    // Ended: a third start still starts nothing, and says so.
    expect(await start(hub, 'q1')).toEqual({
      status: 200,
      json: { id: 'q1', topic: 'relay/q1', started: false, state: 'ended' },
    })
    expect(llm!.requests).toHaveLength(1)
  })

  it('starts when viewers subscribed first (they make the topic open, not a generation)', async () => {
    const hub = await hubWithLlm({ tokens: TOKENS, delayMs: 5 })
    const early = await watch(hub, 'first')
    await waitFor(() => hub.server.hub.subscriberCount('relay/first') === 1, 'the viewer')
    expect(await post(hub, '/relays/first/abort', {})).toMatchObject({ status: 404 })
    expect((await start(hub, 'first')).json).toMatchObject({ started: true })
    await early.ended
    expect(relayText(early)).toBe(TEXT)
    expect(llm!.requests).toHaveLength(1)
  })

  it('goes on when every viewer leaves; the topic keeps the whole answer', async () => {
    const hub = await hubWithLlm({ tokens: TOKENS, delayMs: 20 })
    await start(hub, 'alone')
    const viewer = await watch(hub, 'alone')
    await viewer.waitForEvents(2)
    viewer.close()
    await waitFor(() => hub.server.hub.subscriberCount('relay/alone') === 0, 'no viewer')
    await waitFor(() => llm!.requests[0]!.finished, 'the upstream finished', 5_000)
    expect(llm!.requests[0]!.cancelled).toBe(false)
    const later = await watch(hub, 'alone')
    await later.ended
    expect(relayText(later)).toBe(TEXT)
    expect(relayFinal(later)?.event).toBe('done')
  })

  it('abort cancels the upstream request and ends the topic for every viewer with reason aborted', async () => {
    const hub = await hubWithLlm({ tokens: TOKENS, delayMs: 100 })
    await start(hub, 'stop-me')
    const viewers = [await watch(hub, 'stop-me'), await watch(hub, 'stop-me')]
    await viewers[0]!.waitForEvents(2)
    const aborted = await post(hub, '/relays/stop-me/abort', {})
    expect(aborted).toEqual({
      status: 200,
      json: { id: 'stop-me', topic: 'relay/stop-me', aborted: true, state: 'ended' },
    })
    await waitFor(() => llm!.requests[0]!.cancelled, 'the upstream saw its request cancelled')
    for (const viewer of viewers) {
      await viewer.ended
      const final = relayFinal(viewer)!
      expect(final.event).toBe('error')
      expect(JSON.parse(final.data)).toEqual({
        outcome: 'aborted',
        reason: 'aborted',
        tokens: viewer.events.filter((event) => event.event === 'token').length,
        message: 'Stopped by POST /relays/stop-me/abort.',
      })
      // Exactly one final event.
      expect(viewer.events.filter((e) => e.event === 'done' || e.event === 'error')).toHaveLength(1)
    }
    expect(llm!.requests[0]!.sent).toBeLessThan(TOKENS.length)
    // Again: it had ended.
    expect((await post(hub, '/relays/stop-me/abort', {})).json).toMatchObject({ aborted: false })
    expect(await post(hub, '/relays/never/abort', {})).toMatchObject({
      status: 404,
      json: { error: { code: 'ERR_SSE_NOT_FOUND' } },
    })
  })

  it('ends with error and a reason on the timeout, the token cap and an upstream failure', async () => {
    const slow = await hubWithLlm({ tokens: TOKENS, delayMs: 200 }, { relayTimeoutMs: 300 })
    await start(slow, 't')
    const timedOut = await watch(slow, 't')
    await timedOut.ended
    expect(JSON.parse(relayFinal(timedOut)!.data)).toMatchObject({
      outcome: 'timeout',
      reason: 'timeout',
      message: 'No completion within 300 ms.',
    })
    await waitFor(() => llm!.requests[0]!.cancelled, 'the slow upstream cancelled')
    await llm!.close()

    const capped = await hubWithLlm({ tokens: TOKENS, delayMs: 5 }, { relayMaxTokens: 3 })
    await start(capped, 'c')
    const cut = await watch(capped, 'c')
    await cut.ended
    expect(relayText(cut)).toBe(TOKENS.slice(0, 3).join(''))
    expect(JSON.parse(relayFinal(cut)!.data)).toEqual({
      outcome: 'error',
      reason: 'max-tokens',
      tokens: 3,
      message: 'The source sent more than 3 tokens (maxTokens).',
    })
    await llm!.close()

    const failing = await hubWithLlm({ tokens: TOKENS, status: 503 })
    await start(failing, 'f')
    const failed = await watch(failing, 'f')
    await failed.ended
    const final = JSON.parse(relayFinal(failed)!.data) as Record<string, unknown>
    expect(final).toMatchObject({ outcome: 'error', reason: 'upstream', tokens: 0 })
    expect(final.message).toContain('the fake upstream is overloaded')
  })

  it('ends with error (reason upstream) when an upstream in code throws as it is called', async () => {
    const hub = await fixture.start({
      relayUpstreams: {
        broken: {
          source: () => {
            throw new Error('the model is not loaded')
          },
        },
      },
    })
    expect((await post(hub, '/relays', { id: 'b', upstream: 'broken' })).status).toBe(202)
    const viewer = await watch(hub, 'b')
    await viewer.ended
    expect(JSON.parse(relayFinal(viewer)!.data)).toEqual({
      outcome: 'error',
      reason: 'upstream',
      tokens: 0,
      message: 'the model is not loaded',
    })
  })

  it('refuses what it cannot do with a 4xx that says why, and calls no upstream', async () => {
    const hub = await hubWithLlm({ tokens: TOKENS })
    const refusals = [
      [{ id: 'a', upstream: 'defualt' }, /Unknown upstream "defualt"; did you mean "default"\?/],
      [
        { id: 'a', upstream: 'http://169.254.169.254/latest' },
        /names a configured upstream, not a URL/,
      ],
      [{ id: 'a' }, /Expected `upstream` to name a configured upstream \(default\)/],
      [{ id: 'a b', upstream: 'default' }, /Expected `id` to be 1 to 128 characters/],
      [{ id: 'a', upstream: 'default', bdy: {} }, /Unknown field "bdy"; did you mean `body`\?/],
      [{ id: 'a', upstream: 'default', body: [] }, /Expected `body` to be a JSON object/],
    ] as const
    for (const [body, message] of refusals) {
      const answer = await post(hub, '/relays', body)
      expect(answer.status, JSON.stringify(body)).toBe(400)
      expect(answer.json.error.message).toMatch(message)
    }
    const text = await fetch(hub.url + '/relays', { method: 'POST', body: 'id=a' })
    expect(text.status).toBe(415)
    expect(llm!.requests).toHaveLength(0)
    expect((await fetch(hub.url + '/topics/relay%2Fa').then((r) => r.json())).state).toBe('unknown')
  })

  it('with another upstream under a used id: 409, nothing started', async () => {
    llm = await startFakeLlm({ tokens: TOKENS, delayMs: 50 })
    const hub = await fixture.start({
      relayUpstreams: { a: { url: llm.url }, b: { url: llm.url } },
    })
    expect((await post(hub, '/relays', { id: 'x', upstream: 'a' })).status).toBe(202)
    const other = await post(hub, '/relays', { id: 'x', upstream: 'b' })
    expect(other.status).toBe(409)
    expect(other.json.error.message).toMatch(/started with another upstream; use a new id/)
    expect(llm.requests).toHaveLength(1)
  })

  it('with JWT: a starter may start, a watcher may watch but not abort, an abort grant may abort', async () => {
    const secret = 's'.repeat(32)
    const key = new TextEncoder().encode(secret)
    const token = (sub: string, claim: object): Promise<string> =>
      new SignJWT({ ssehub: claim })
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject(sub)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(key)
    const hub = await hubWithLlm(
      { tokens: TOKENS, delayMs: 100 },
      { jwtSecret: secret, privateTopics: ['relay/*'] },
    )
    const starter = await token('app', { publish: ['relay/*'] })
    const watcher = await token('ada', { subscribe: ['relay/*'] })
    const stopper = await token('ops', { abort: ['relay/*'] })
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` })
    expect((await start(hub, 'j', bearer(watcher))).status).toBe(403)
    expect((await start(hub, 'j')).status).toBe(401)
    expect((await start(hub, 'j', bearer(starter))).status).toBe(202)
    const viewer = await watch(hub, 'j', bearer(watcher))
    expect(viewer.status).toBe(200)
    await viewer.waitForEvents(2)
    const refused = await post(hub, '/relays/j/abort', {}, bearer(watcher))
    expect(refused.status).toBe(403)
    expect(refused.json.error.message).toMatch(/`ssehub.abort` selectors/)
    expect((await post(hub, '/relays/j/abort', {})).status).toBe(401)
    expect((await post(hub, '/relays/j/abort', {}, bearer(stopper))).json).toMatchObject({
      aborted: true,
    })
    await viewer.ended
    expect(relayFinal(viewer)?.event).toBe('error')
  })
})
