import { createServer, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { afterEach, beforeEach, describe, expect, it } from 'vitest'
import {
  ResponseError,
  UpstreamError,
  isSseError,
  streamChatCompletion,
  type ChatCompletionChunk,
} from '../../src/client/index.js'

/**
 * A fake OpenAI-compatible server: POST /v1/chat/completions; `model` picks the behaviour.
 */
interface Received {
  readonly headers: Record<string, string | string[] | undefined>
  readonly body: Record<string, unknown>
}

let server: Server
let url: string
let received: Received[]

function chunk(content: string, finish: string | null = null): string {
  const value = {
    id: 'chatcmpl-1',
    object: 'chat.completion.chunk',
    created: 1,
    model: 'fake',
    choices: [{ index: 0, delta: { content }, finish_reason: finish }],
  }
  return `data: ${JSON.stringify(value)}\n\n`
}

const scenarios: Record<string, (res: ServerResponse) => void> = {
  ok(res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(': OPENROUTER PROCESSING\n\n')
    res.write(chunk('Hel'))
    res.write(chunk('lo'))
    res.write(chunk(' world', 'stop'))
    res.write('data: [DONE]\n\n')
    // Anything after [DONE] is not read.
    res.end(chunk('after done'))
  },
  unauthorized(res) {
    res.writeHead(401, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        error: {
          message: 'Incorrect API key provided: sk-wrong.',
          type: 'invalid_request_error',
          code: 'invalid_api_key',
        },
      }),
    )
  },
  'vllm-error'(res) {
    res
      .writeHead(400, { 'content-type': 'application/json' })
      .end(JSON.stringify({ object: 'error', message: 'max_tokens is too large', code: 400 }))
  },
  'plain-500'(res) {
    res.writeHead(500, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>')
  },
  'error-event'(res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(chunk('partial'))
    res.end(
      'event: error\ndata: {"error":{"message":"The server is overloaded","type":"overloaded"}}\n\n',
    )
  },
  'error-chunk'(res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end('data: {"error":{"message":"Rate limit reached","type":"rate_limit"}}\n\n')
  },
  'not-json'(res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end('data: {oops\n\n')
  },
  'no-done'(res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.end(chunk('cut'))
  },
  drop(res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(chunk('first'), () => res.socket?.destroy())
  },
  hang(res) {
    res.writeHead(200, { 'content-type': 'text/event-stream' })
    res.write(chunk('one'))
  },
}

beforeEach(async () => {
  received = []
  server = createServer((req, res) => {
    let text = ''
    req.setEncoding('utf8')
    req.on('data', (part: string) => (text += part))
    req.on('end', () => {
      const body = JSON.parse(text) as Record<string, unknown>
      received.push({ headers: req.headers, body })
      const scenario = scenarios[String(body.model)]
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions' || scenario === undefined) {
        res.writeHead(404).end()
        return
      }
      // The second POST of a reconnecting client gets a clean completion.
      if (received.length > 1 && body.model === 'drop') scenarios.ok!(res)
      else scenario(res)
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/chat/completions`
})

afterEach(async () => {
  server.closeAllConnections()
  await new Promise((resolve) => server.close(resolve))
})

const messages = [{ role: 'user', content: 'Say hello' }]

async function run(
  model: string,
  extra: Partial<Parameters<typeof streamChatCompletion>[0]> = {},
): Promise<{ text: string; chunks: ChatCompletionChunk[]; error: unknown }> {
  const chunks: ChatCompletionChunk[] = []
  let error: unknown
  try {
    for await (const c of streamChatCompletion({ url, body: { model, messages }, ...extra })) {
      chunks.push(c)
    }
  } catch (caught) {
    error = caught
  }
  const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')
  return { text, chunks, error }
}

describe('streamChatCompletion', () => {
  it('POSTs with stream: true and the key, and yields the chunks until [DONE]', async () => {
    const { text, chunks, error } = await run('ok', {
      apiKey: 'sk-test',
      headers: { 'OpenAI-Organization': 'org-1' },
    })
    expect(error).toBeUndefined()
    expect(text).toBe('Hello world')
    expect(chunks).toHaveLength(3)
    expect(chunks[2]!.choices[0]!.finish_reason).toBe('stop')
    expect(received).toHaveLength(1)
    expect(received[0]!.body).toEqual({ model: 'ok', messages, stream: true })
    expect(received[0]!.headers).toMatchObject({
      authorization: 'Bearer sk-test',
      'content-type': 'application/json',
      accept: 'text/event-stream',
      'openai-organization': 'org-1',
    })
  })

  it('throws the upstream message of a JSON error response, with its status', async () => {
    const { error } = await run('unauthorized')
    expect(error).toBeInstanceOf(UpstreamError)
    expect(isSseError(error)).toBe(true)
    expect(error).toMatchObject({
      code: 'ERR_SSE_UPSTREAM',
      status: 401,
      message: 'Incorrect API key provided: sk-wrong.',
      error: { type: 'invalid_request_error', code: 'invalid_api_key' },
    })
    expect((error as Error).cause).toBeInstanceOf(ResponseError)
  })

  it('understands the vLLM error shape', async () => {
    const { error } = await run('vllm-error')
    expect(error).toMatchObject({
      code: 'ERR_SSE_UPSTREAM',
      status: 400,
      message: 'max_tokens is too large',
    })
  })

  it('an error status without a JSON error stays a ResponseError', async () => {
    const { error } = await run('plain-500')
    expect(error).toBeInstanceOf(ResponseError)
    expect(error).toMatchObject({
      code: 'ERR_SSE_BAD_RESPONSE',
      status: 500,
      body: '<h1>Bad gateway</h1>',
    })
  })

  it('throws on an error event, after the chunks before it', async () => {
    const { text, error } = await run('error-event')
    expect(text).toBe('partial')
    expect(error).toMatchObject({ code: 'ERR_SSE_UPSTREAM', message: 'The server is overloaded' })
  })

  it('throws on an error chunk', async () => {
    const { chunks, error } = await run('error-chunk')
    expect(chunks).toEqual([])
    expect(error).toMatchObject({ code: 'ERR_SSE_UPSTREAM', message: 'Rate limit reached' })
  })

  it('throws on a chunk that is not JSON, and on an end before [DONE]', async () => {
    expect((await run('not-json')).error).toMatchObject({
      code: 'ERR_SSE_UPSTREAM',
      message: 'The upstream sent a chunk that is not JSON: "{oops"',
    })
    const cut = await run('no-done')
    expect(cut.text).toBe('cut')
    expect(cut.error).toMatchObject({
      code: 'ERR_SSE_UPSTREAM',
      message: /before `data: \[DONE\]`/,
    })
  })

  it('never re-POSTs when the connection drops, unless reconnect is given', async () => {
    const once = await run('drop')
    expect(once.text).toBe('first')
    expect(once.error).toMatchObject({ code: 'ERR_SSE_CONNECTION_FAILED' })
    expect(received).toHaveLength(1)

    received = []
    const again = await run('drop', { reconnect: { retryMs: 10 } })
    expect(again.error).toBeUndefined()
    expect(again.text).toBe('firstHello world')
    expect(received).toHaveLength(2)
  })

  it('ends quietly on abort, and break cancels the request', async () => {
    const controller = new AbortController()
    const chunks: string[] = []
    for await (const c of streamChatCompletion({
      url,
      body: { model: 'hang', messages },
      signal: controller.signal,
    })) {
      chunks.push(c.choices[0]!.delta.content ?? '')
      controller.abort()
    }
    expect(chunks).toEqual(['one'])

    for await (const c of streamChatCompletion({ url, body: { model: 'hang', messages } })) {
      expect(c.choices[0]!.delta.content).toBe('one')
      break
    }
  })
})
