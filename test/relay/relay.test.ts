import { afterEach, describe, expect, it } from 'vitest'
import type { PublishInput, PublishResult } from '../../src/hub/types.js'
import { createHub, type Hub } from '../../src/hub/hub.js'
import { waitFor } from '../helpers/wait.js'
import { mockChatModel, relay } from '../../src/relay/index.js'

/** A hub stand-in that records every publish. */
const hubs: Hub[] = []
afterEach(async () => {
  for (const hub of hubs.splice(0)) await hub.close()
})

/** A real hub (it validates every publish) that also records what the relay asked it to publish. */
function recordingHub(): {
  published: PublishInput[]
  publish(i: PublishInput): Promise<PublishResult>
} {
  const hub = createHub({ heartbeatMs: null })
  hubs.push(hub)
  const published: PublishInput[] = []
  return {
    published,
    publish(input) {
      published.push(input)
      return hub.publish(input)
    },
  }
}

function chunk(content: string): string {
  const value = {
    id: 'c',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'm',
    choices: [{ index: 0, delta: { content }, finish_reason: null }],
  }
  return `data: ${JSON.stringify(value)}\n\n`
}

function sseResponse(parts: string[], status = 200): Response {
  const encoder = new TextEncoder()
  const body = new ReadableStream<Uint8Array>({
    start(controller) {
      for (const part of parts) controller.enqueue(encoder.encode(part))
      controller.close()
    },
  })
  return new Response(body, { status, headers: { 'content-type': 'text/event-stream' } })
}

async function* tokens(list: string[]): AsyncGenerator<string> {
  for (const token of list) {
    await Promise.resolve()
    yield token
  }
}

/** A source that yields one token then never settles (a hung upstream). */
function hanging(): AsyncIterable<string> {
  let sent = false
  return {
    [Symbol.asyncIterator]: () => ({
      next: () => {
        if (sent) return new Promise<IteratorResult<string>>(() => undefined)
        sent = true
        return Promise.resolve({ done: false, value: 'a' })
      },
    }),
  }
}

describe('relay', () => {
  it('publishes each token, then one closing done event', async () => {
    const hub = recordingHub()
    const result = await relay(hub, { topic: 'chat/1', source: tokens(['Hel', 'lo']) })
    expect(result).toEqual({ outcome: 'done', tokens: 2 })
    expect(hub.published).toEqual([
      { topic: 'chat/1', event: 'token', data: 'Hel' },
      { topic: 'chat/1', event: 'token', data: 'lo' },
      { topic: 'chat/1', event: 'done', data: { outcome: 'done', tokens: 2 }, close: true },
    ])
  })

  it('parses an OpenAI-compatible Response until [DONE]', async () => {
    const hub = recordingHub()
    const source = sseResponse([
      ': keepalive\n\n',
      chunk('Hi'),
      chunk(''),
      chunk(' there'),
      'data: [DONE]\n\n',
    ])
    const result = await relay(hub, { topic: 't', source })
    expect(result.outcome).toBe('done')
    expect(hub.published.map((p) => p.data)).toEqual([
      'Hi',
      ' there',
      { outcome: 'done', tokens: 2 },
    ])
  })

  it('forwards an upstream error as one closing error event', async () => {
    const hub = recordingHub()
    const source = sseResponse([chunk('Hi'), 'data: {"error":{"message":"overloaded"}}\n\n'])
    const result = await relay(hub, { topic: 't', source })
    expect(result).toEqual({
      outcome: 'error',
      tokens: 1,
      reason: 'upstream',
      message: 'overloaded',
    })
    expect(hub.published.at(-1)).toEqual({
      topic: 't',
      event: 'error',
      data: { outcome: 'error', tokens: 1, reason: 'upstream', message: 'overloaded' },
      close: true,
    })
  })

  it('treats a stream cut before [DONE] as an error', async () => {
    const hub = recordingHub()
    const result = await relay(hub, { topic: 't', source: sseResponse([chunk('Hi')]) })
    expect(result.outcome).toBe('error')
    expect(hub.published.filter((p) => p.close === true)).toHaveLength(1)
  })

  it('ends a hung source at the timeout with exactly one final event', async () => {
    const hub = recordingHub()
    const result = await relay(hub, { topic: 't', source: hanging(), timeoutMs: 50 })
    expect(result.outcome).toBe('timeout')
    expect(hub.published.map((p) => p.event)).toEqual(['token', 'error'])
  })

  it('ends on abort and stops the source', async () => {
    const hub = recordingHub()
    const controller = new AbortController()
    const source = mockChatModel({ tokenDelayMs: 5, signal: controller.signal })
    const running = relay(hub, { topic: 't', source, signal: controller.signal })
    await waitFor(() => hub.published.length >= 2, 'two tokens')
    controller.abort()
    const result = await running
    expect(result.outcome).toBe('aborted')
    expect(hub.published.filter((p) => p.close === true)).toHaveLength(1)
    expect(hub.published.at(-1)?.event).toBe('error')
  })

  it('rejects bad options up front', async () => {
    const hub = recordingHub()
    await expect(relay(hub, { topic: '', source: tokens([]) })).rejects.toThrow(TypeError)
    await expect(relay(hub, { topic: 't', source: tokens([]), timeoutMs: -1 })).rejects.toThrow(
      RangeError,
    )
  })

  it('fans one generation out to every subscriber of a real hub, then ends their streams', async () => {
    const hub = createHub({ heartbeatMs: null })
    const seen: string[][] = [[], []]
    const ended: boolean[] = [false, false]
    for (const [i, list] of seen.entries()) {
      const web = hub.subscribeWeb(new Request('http://hub/events?topic=chat/x'))
      const response = await web.response
      void (async () => {
        const reader = response.body!.pipeThrough(new TextDecoderStream()).getReader()
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          list.push(value)
        }
        ended[i] = true
      })()
    }
    await relay(hub, { topic: 'chat/x', source: mockChatModel({ text: 'a b c', tokenDelayMs: 0 }) })
    const deadline = Date.now() + 2000
    while (!(ended[0] && ended[1]) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 5))
    expect(ended).toEqual([true, true])
    for (const list of seen) {
      const text = list.join('')
      expect(text).toMatch(/event: token\nid: \S+\ndata: a \n/)
      expect(text).toContain('event: done\n')
    }
    await hub.close()
  })
})
