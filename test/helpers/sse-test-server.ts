import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

/** One request the test server received. */
export interface RecordedRequest {
  readonly path: string
  readonly method: string
  readonly headers: IncomingMessage['headers']
  readonly body: string
  /** `Date.now()` when the request arrived. */
  readonly at: number
}

/** A real node:http server with one named route per client behaviour, on a free port. */
export type SseTestServer = RecordingServer<RecordedRequest>

type Route = (req: IncomingMessage, res: ServerResponse, ctx: RouteContext) => void

interface RouteContext {
  readonly path: string
  readonly query: URLSearchParams
  readonly body: string
  /** 1 for the first request to this path, 2 for the second... */
  readonly hit: number
}

const sseHeaders = { 'content-type': 'text/event-stream', 'cache-control': 'no-store' }

function number(query: URLSearchParams, name: string, fallback: number): number {
  const value = query.get(name)
  return value === null ? fallback : Number(value)
}

/** Writes `frames` one write each, so that clients see several chunks. */
function stream(res: ServerResponse, frames: string[], end = true): void {
  res.writeHead(200, sseHeaders)
  for (const frame of frames) res.write(frame)
  if (end) res.end()
}

/**
 * The routes. Every stream route ends its response after its events unless it says otherwise, so
 * that reconnecting clients come back.
 */
const routes: Record<string, Route> = {
  /**
   * `retry` (default 20) then `count` (default 3) events counting on from `Last-Event-ID`:
   * `id: n`, `data: n`.
   */
  '/counter'(req, res, { query }) {
    const from = Number(req.headers['last-event-id'] ?? '0')
    const frames = [`retry: ${number(query, 'retry', 20)}\n\n`]
    for (let n = from + 1; n <= from + number(query, 'count', 3); n++) {
      frames.push(`id: ${n}\ndata: ${n}\n\n`)
    }
    stream(res, frames)
  },
  /** One event, no `retry:`, then the end. */
  '/end-after-one'(_req, res) {
    stream(res, ['id: 1\ndata: one\n\n'])
  },
  /** `retry: 100`, one event, then the end. */
  '/retry-100'(_req, res, { hit }) {
    stream(res, [`retry: 100\nid: ${hit}\ndata: hit ${hit}\n\n`])
  },
  /**
   * `/status/<code>`: that status, with a text body (none for 204); with `?sse=1`, a
   * `text/event-stream` body with one event instead.
   */
  '/status'(_req, res, { path, query }) {
    const status = Number(path.slice('/status/'.length))
    if (status === 204) {
      res.writeHead(204).end()
      return
    }
    if (query.get('sse') === '1') {
      res.writeHead(status, sseHeaders).end(`data: status ${status}\n\n`)
      return
    }
    res.writeHead(status, { 'content-type': 'text/plain' }).end(`status ${status} body`)
  },
  /** 200 with a JSON body. */
  '/wrong-type'(_req, res) {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}')
  },
  /** The response head waits `ms` (default 300) before the stream starts. */
  '/slow-connect'(_req, res, { query }) {
    const timer = setTimeout(() => stream(res, ['data: finally\n\n']), number(query, 'ms', 300))
    res.on('close', () => clearTimeout(timer))
  },
  /** One event whose data is the request's `Last-Event-ID` (or `none`), id `next`. */
  '/echo-last-event-id'(req, res) {
    stream(res, [
      `retry: 20\nid: next\ndata: ${String(req.headers['last-event-id'] ?? 'none')}\n\n`,
    ])
  },
  /** One event with the method, content type, authorization and body as JSON. */
  '/post-echo'(req, res, { body }) {
    const echo = {
      method: req.method,
      contentType: req.headers['content-type'] ?? null,
      authorization: req.headers.authorization ?? null,
      accept: req.headers.accept ?? null,
      body,
    }
    stream(res, [`data: ${JSON.stringify(echo)}\n\n`])
  },
  /** `retry: 20` and one event (`hit n`, counting on from `Last-Event-ID`), then silence: the connection stays open until the client leaves. */
  '/silent'(req, res) {
    const n = Number(req.headers['last-event-id'] ?? '0') + 1
    stream(res, [`retry: 20\nid: ${n}\ndata: hit ${n}\n\n`], false)
  },
  /** A comment every `ms` (default 30): alive, with no events. */
  '/heartbeat'(_req, res, { query }) {
    stream(res, [], false)
    const timer = setInterval(() => res.write(':\n\n'), number(query, 'ms', 30))
    res.on('close', () => clearInterval(timer))
  },
  /** First request: one event with `retry: 20`, then the end; later requests: 204. */
  '/then-204'(_req, res, { hit }) {
    if (hit > 1) {
      res.writeHead(204).end()
      return
    }
    stream(res, ['retry: 20\nid: 1\ndata: first\n\n'])
  },
  /** The first `fails` (default 2) requests are cut before any response; then `/counter`. */
  '/flaky'(req, res, ctx) {
    if (ctx.hit <= number(ctx.query, 'fails', 2)) {
      req.socket.destroy()
      return
    }
    routes['/counter']!(req, res, ctx)
  },
  /** One event (`hit n`, as `/silent`), then the socket is destroyed mid-stream (a network error). */
  '/drop'(req, res) {
    const n = Number(req.headers['last-event-id'] ?? '0') + 1
    res.writeHead(200, sseHeaders)
    res.write(`retry: 20\nid: ${n}\ndata: hit ${n}\n\n`, () => req.socket.destroy())
  },
  /** A line of `size` (default 1000) characters. */
  '/big-line'(_req, res, { query }) {
    stream(res, [`data: ${'x'.repeat(number(query, 'size', 1000))}\n\n`, 'data: after\n\n'])
  },
  /** `count` (default 500) events in one write each: for backpressure tests. */
  '/many'(_req, res, { query }) {
    const count = number(query, 'count', 500)
    stream(
      res,
      Array.from(
        { length: count },
        (_, i) => `id: ${i + 1}\ndata: ${'y'.repeat(100)} ${i + 1}\n\n`,
      ),
    )
  },
  /**
   * The spec's examples and our edge cases (BOM, CR, CRLF, comments, ids with NUL, multibyte
   * characters split between writes), in writes cut at awkward places.
   */
  '/mixed'(_req, res) {
    const text =
      '\uFEFFretry: 20\r\n: comment\r\n\r\n' +
      'data: YHOO\ndata: +2\ndata: 10\n\n' +
      'event: add\rdata: 73857293\r\rid: 7\ndata:first\ndata:  second\n\n' +
      'id: bad\u0000id\ndata: nul id ignored\n\n' +
      'id\ndata: id reset\n\n' +
      'data: Blåbærsyltetøy 一定能 😀\n\n' +
      'unknown: field\ndata\n\n' +
      'event: \ndata: empty type\r\n\r\n' +
      'data: no dispatch at the end'
    const bytes = Buffer.from(text, 'utf8')
    res.writeHead(200, sseHeaders)
    // Cut every 7 bytes: splits CRLFs, the BOM and multibyte characters.
    for (let i = 0; i < bytes.length; i += 7) res.write(bytes.subarray(i, i + 7))
    res.end()
  },
}

/** Starts the test server on 127.0.0.1, port 0. Close it in `afterEach`. */
export async function startSseTestServer(): Promise<SseTestServer> {
  const requests: RecordedRequest[] = []
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8')
      const path = url.pathname
      requests.push({ path, method: req.method ?? '', headers: req.headers, body, at: Date.now() })
      const route = routes[path] ?? (path.startsWith('/status/') ? routes['/status'] : undefined)
      if (route === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('no such route')
        return
      }
      const hit = requests.filter((request) => request.path === path).length
      route(req, res, { path, query: url.searchParams, body, hit })
    })
  })
  return listenRecording(server, requests)
}

/** A test server on a free loopback port that records its requests (path first). */
export interface RecordingServer<R extends { readonly path: string }> {
  /** `http://127.0.0.1:<port>` */
  readonly url: string
  /** Every request so far, in arrival order. */
  readonly requests: readonly R[]
  /** The requests to one path (without query). */
  hits(path: string): R[]
  /** Closes the server and every open connection. */
  close(): Promise<void>
}

/** Listens on 127.0.0.1, port 0, and serves `requests` (which the handler fills) as recorded. */
export async function listenRecording<R extends { readonly path: string }>(
  server: Server,
  requests: R[],
): Promise<RecordingServer<R>> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    hits: (path) => requests.filter((request) => request.path === path),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error === undefined ? resolve() : reject(error)))
        server.closeAllConnections()
      }),
  }
}

/** What `/mixed` must produce, as `{type, data, lastEventId}`. */
export const mixedEvents = [
  { type: 'message', data: 'YHOO\n+2\n10', lastEventId: '' },
  { type: 'add', data: '73857293', lastEventId: '' },
  { type: 'message', data: 'first\n second', lastEventId: '7' },
  { type: 'message', data: 'nul id ignored', lastEventId: '7' },
  { type: 'message', data: 'id reset', lastEventId: '' },
  { type: 'message', data: 'Blåbærsyltetøy 一定能 😀', lastEventId: '' },
  { type: 'message', data: '', lastEventId: '' },
  { type: 'message', data: 'empty type', lastEventId: '' },
]
