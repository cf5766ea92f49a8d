import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One request the fake upstream received. */
export interface FakeLlmRequest {
  readonly url: string
  readonly authorization: string | undefined
  readonly body: Record<string, unknown>
  /** True once the hub hung up before the answer was complete (the generation was cancelled). */
  cancelled: boolean
  /** True once the whole answer and `[DONE]` were written. */
  finished: boolean
  /** Chunks written so far. */
  sent: number
}

/** A local OpenAI-compatible chat completions server that streams `tokens`, one per `delayMs`. */
export interface FakeLlm {
  /** Its base URL (`http://127.0.0.1:<port>`). */
  readonly url: string
  readonly requests: FakeLlmRequest[]
  close(): Promise<void>
}

/**
 * Starts the fake upstream. `status` other than 200 answers every request with that status and an
 * OpenAI-style error body.
 */
export async function startFakeLlm(options: {
  readonly tokens: readonly string[]
  readonly delayMs?: number
  readonly status?: number
}): Promise<FakeLlm> {
  const requests: FakeLlmRequest[] = []
  const delayMs = options.delayMs ?? 10
  const server: Server = createServer((req, res) => {
    let raw = ''
    req.on('data', (chunk: Buffer) => (raw += chunk.toString()))
    req.on('end', () => {
      const request: FakeLlmRequest = {
        url: req.url ?? '',
        authorization: req.headers.authorization,
        body: JSON.parse(raw || '{}') as Record<string, unknown>,
        cancelled: false,
        finished: false,
        sent: 0,
      }
      requests.push(request)
      if (options.status !== undefined && options.status !== 200) {
        res.writeHead(options.status, { 'content-type': 'application/json' })
        res.end(JSON.stringify({ error: { message: 'the fake upstream is overloaded' } }))
        return
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      const timer = setInterval(() => {
        const token = options.tokens[request.sent]
        if (token === undefined) {
          clearInterval(timer)
          request.finished = true
          res.end('data: [DONE]\n\n')
          return
        }
        request.sent += 1
        const chunk = { choices: [{ index: 0, delta: { content: token }, finish_reason: null }] }
        res.write(`data: ${JSON.stringify(chunk)}\n\n`)
      }, delayMs)
      res.on('close', () => {
        clearInterval(timer)
        if (!request.finished) request.cancelled = true
      })
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    async close() {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    },
  }
}
