import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { listenRecording, type RecordingServer } from './sse-test-server.js'

/**
 * A real node:http server whose routes mirror the WPT `eventsource/resources/*.py` handlers that
 * the client is held to, on a free port. Headers are recorded as the bytes that came in.
 *
 * @see https://github.com/web-platform-tests/wpt/tree/master/eventsource/resources
 */
export type WptServer = RecordingServer<WptRequest>

/** One request the server received. */
export interface WptRequest {
  readonly path: string
  readonly method: string
  /**
   * `Last-Event-ID` as sent, in hex (`e280a6` for `…` sent as UTF-8); `undefined` when absent.
   * node:http reads header bytes as Latin-1, one character per byte, so the bytes are recoverable.
   */
  readonly lastEventIdHex: string | undefined
}

const sseType = { 'content-type': 'text/event-stream' }

/** The bytes of a header value as node:http gave them (one Latin-1 character per byte). */
function headerBytes(value: string | string[] | undefined): Buffer | undefined {
  if (value === undefined) return undefined
  return Buffer.from(Array.isArray(value) ? value.join(', ') : value, 'latin1')
}

type Route = (req: IncomingMessage, res: ServerResponse, query: URLSearchParams) => void

const routes: Record<string, Route> = {
  /**
   * last-event-id.py: with a `Last-Event-ID`, one event whose data is that header's bytes as sent;
   * without, `id: <idvalue>` (default `…`, U+2026: deliberately beyond Latin-1), `retry:` (`retry`,
   * default 20; WPT uses 200) and `data: hello`.
   */
  '/last-event-id'(req, res, query) {
    const last = headerBytes(req.headers['last-event-id'])
    res.writeHead(200, sseType)
    if (last !== undefined) {
      res.end(Buffer.concat([Buffer.from('data: '), last, Buffer.from('\n\n')]))
      return
    }
    const id = query.get('idvalue') ?? '\u2026'
    res.end(`id: ${id}\nretry: ${query.get('retry') ?? '20'}\ndata: hello\n\n`)
  },
  /**
   * status-error.py: the status `status` (default 404) with `Content-Type: text/event-stream` and
   * `data: data` (node:http drops the body of a 204 and a 304).
   */
  '/status-error'(_req, res, query) {
    res.writeHead(Number(query.get('status') ?? '404'), sseType).end('data: data\n\n')
  },
  /** A redirect: status `status` (default 302) to `to` (default `/last-event-id`). */
  '/redirect'(_req, res, query) {
    res
      .writeHead(Number(query.get('status') ?? '302'), {
        location: query.get('to') ?? '/last-event-id',
      })
      .end()
  },
}

/** Starts the server on 127.0.0.1, port 0. Close it in `afterEach`. */
export async function startWptServer(): Promise<WptServer> {
  const requests: WptRequest[] = []
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    requests.push({
      path: url.pathname,
      method: req.method ?? '',
      lastEventIdHex: headerBytes(req.headers['last-event-id'])?.toString('hex'),
    })
    const route = routes[url.pathname]
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('no such route')
      return
    }
    route(req, res, url.searchParams)
  })
  return listenRecording(server, requests)
}
