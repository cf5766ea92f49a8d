/**
 * `followRelay()` from `ssehub/client` against a real hub server and `relay()`: a viewer from the
 * first token, one that joins after half of them, and one whose stream drops mid-answer all end
 * with the whole text, once; an upstream error ends with RelayEndedError and the text so far.
 */
import { afterEach, describe, expect, it } from 'vitest'
import { followRelay, RelayEndedError, type RelayEnd } from '../../src/client/relay-text.js'
import { relay } from '../../src/relay/relay.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'

let hub: TestHub | undefined
afterEach(async () => {
  await hub?.close()
  hub = undefined
})

/** A token source the test feeds by hand (no timers): `push` a token, `end()` or `fail()`. */
function handFed(): {
  source: AsyncIterable<string>
  push(token: string): void
  end(): void
  fail(message: string): void
} {
  const queue: (string | { end: true } | { error: string })[] = []
  let wake: (() => void) | null = null
  const add = (item: (typeof queue)[number]): void => {
    queue.push(item)
    wake?.()
  }
  return {
    source: {
      async *[Symbol.asyncIterator]() {
        for (;;) {
          while (queue.length === 0) await new Promise<void>((resolve) => (wake = resolve))
          const item = queue.shift()!
          if (typeof item === 'string') yield item
          else if ('end' in item) return
          else throw new Error(item.error)
        }
      },
    },
    push: (token) => add(token),
    end: () => add({ end: true }),
    fail: (message) => add({ error: message }),
  }
}

/** Follows `topic`, recording each text seen; resolves with how it ended. */
function viewer(topic: string): { texts: string[]; done: Promise<RelayEnd> } {
  const texts: string[] = []
  const done = (async () => {
    const iterator = followRelay({ hub: hub!.url, topic })
    for (;;) {
      const next = await iterator.next()
      if (next.done === true) return next.value
      texts.push(next.value.text)
    }
  })()
  return { texts, done }
}

const TOKENS = ['The ', 'answer ', 'is ', 'forty', '-two', '.']

describe('followRelay', () => {
  it('gives every viewer the whole text, however late it joins or often it drops', async () => {
    hub = await startHub({ retryMs: 20 })
    const fed = handFed()
    const relayed = relay(hub.server.hub, { topic: 'relay/q1', source: fed.source })
    const early = viewer('relay/q1')
    await waitFor(() => hub!.server.hub.subscriberCount('relay/q1') === 1, 'the first viewer')
    for (const token of TOKENS.slice(0, 3)) fed.push(token)
    await waitFor(() => early.texts.length === 3, 'half the tokens')
    // A late viewer: the text so far at once (from=start), then the rest.
    const late = viewer('relay/q1')
    await waitFor(() => late.texts.length === 3, 'the late viewer caught up')
    expect(late.texts.at(-1)).toBe('The answer is ')
    // Every stream drops mid-answer: the clients resume with Last-Event-ID, no token twice.
    for (const connection of hub.server.hub.connections()) connection.close()
    for (const token of TOKENS.slice(3)) fed.push(token)
    fed.end()
    expect(await relayed).toEqual({ outcome: 'done', tokens: 6 })
    const whole = TOKENS.join('')
    for (const seen of [early, late]) {
      expect(await seen.done).toEqual({ outcome: 'done', tokens: 6, text: whole })
      expect(seen.texts).toEqual(TOKENS.map((_, i) => TOKENS.slice(0, i + 1).join('')))
    }
    // After the end: a new viewer gets it all, from the history.
    const after = viewer('relay/q1')
    expect(await after.done).toEqual({ outcome: 'done', tokens: 6, text: whole })
  })

  it('ends with RelayEndedError on an upstream error, keeping the text so far', async () => {
    hub = await startHub()
    const fed = handFed()
    const relayed = relay(hub.server.hub, { topic: 'relay/q2', source: fed.source })
    fed.push('partial ')
    fed.fail('upstream 502')
    expect(await relayed).toMatchObject({ outcome: 'error', tokens: 1 })
    const seen = viewer('relay/q2')
    const error = await seen.done.then(
      () => null,
      (failure: unknown) => failure,
    )
    expect(error).toBeInstanceOf(RelayEndedError)
    expect((error as RelayEndedError).message).toBe('The generation ended with error: upstream 502')
    expect((error as RelayEndedError).end).toEqual({
      outcome: 'error',
      tokens: 1,
      text: 'partial ',
    })
    expect(seen.texts).toEqual(['partial '])
  })
})
