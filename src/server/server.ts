import { createHash, timingSafeEqual } from 'node:crypto'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { ErrorCodes, SseError, isSseError } from '../errors.js'
import { Hub, errorBody, type HubOptions } from '../hub/hub.js'
import { parsePublishBody, readBody } from './body.js'
import { dashboardHtml } from './dashboard.js'
import { createMetrics } from './metrics.js'

/** Options of {@link createHubServer}: the hub's options plus the HTTP API's. */
export interface HubServerOptions extends HubOptions {
  /** An existing hub to serve; by default one is created from these options. */
  readonly hub?: Hub
  /**
   * The key that `POST /publish` and every other mutating endpoint require as
   * `Authorization: Bearer <key>`. `null`: no key (then listening on a non-loopback address needs
   * `allowAnonymousPublish`).
   * @default null
   */
  readonly publishKey?: string | null
  /** Allow listening on a non-loopback address without a publish key. @default false */
  readonly allowAnonymousPublish?: boolean
  /** CORS: `'*'`, a list of exact origins, or `null` for no CORS headers. @default null */
  readonly corsOrigins?: '*' | readonly string[] | null
  /** Largest request body, in bytes; larger ones get `413`. @default 1048576 */
  readonly maxBodyBytes?: number
  /** Serve the dashboard page at `/`. @default true */
  readonly dashboard?: boolean
  /** Serve `/metrics` in Prometheus text format. @default true */
  readonly metrics?: boolean
  /** How long a graceful shutdown may take before remaining sockets are cut, in ms. @default 5000 */
  readonly shutdownTimeoutMs?: number
}

/** A hub behind its HTTP API. */
export interface HubServer {
  /** The hub. */
  readonly hub: Hub
  /** The node:http server. */
  readonly server: Server
  /** The request handler, to mount in another node:http server. */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void
  /**
   * Starts listening. Refuses a non-loopback `host` without a publish key unless
   * `allowAnonymousPublish` is set.
   */
  listen(port?: number, host?: string): Promise<AddressInfo>
  /** Graceful shutdown: stop accepting, end every stream, close within `shutdownTimeoutMs`. */
  close(): Promise<void>
}

const loopback = /^(127(?:\.\d{1,3}){3}|::1|localhost|::ffff:127(?:\.\d{1,3}){3})$/i

/** True when `host` only accepts connections from this machine. */
export function isLoopbackHost(host: string): boolean {
  return loopback.test(host)
}

function sha256(value: string): Buffer {
  return createHash('sha256').update(value).digest()
}

function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value)
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
  })
  res.end(body)
}

function sendError(
  res: ServerResponse,
  error: SseError,
  headers: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy()
    return
  }
  const body = errorBody(error)
  res.writeHead(error.status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
  })
  res.end(body)
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendError(
    res,
    new SseError(ErrorCodes.METHOD_NOT_ALLOWED, `Use ${allow} on this path.`, { status: 405 }),
    { allow },
  )
}

/**
 * Creates the hub server: the HTTP API over a {@link Hub}.
 *
 * | route | what |
 * | --- | --- |
 * | `GET /events?topic=T&clientId=C&lastEventId=ID` | subscribe (text/event-stream) |
 * | `POST /publish` | publish (JSON or form) |
 * | `DELETE /clients/{clientId}` | end every connection of a client |
 * | `GET /clients`, `GET /topics/{topic}`, `GET /stats`, `GET /healthz`, `GET /metrics` | introspection |
 */
export function createHubServer(options: HubServerOptions = {}): HubServer {
  const hub = options.hub ?? new Hub(options)
  const ownsHub = options.hub === undefined
  const keyDigest =
    options.publishKey === undefined || options.publishKey === null
      ? null
      : sha256(options.publishKey)
  if (options.publishKey === '')
    throw new RangeError('Expected `publishKey` to be a non-empty string or null')
  const maxBodyBytes = options.maxBodyBytes ?? 1_048_576
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes < 1) {
    throw new RangeError(
      `Expected \`maxBodyBytes\` to be a positive integer, got \`${String(maxBodyBytes)}\``,
    )
  }
  const cors = options.corsOrigins ?? null
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 5_000
  const metrics = options.metrics === false ? null : createMetrics(hub)
  const dashboard = options.dashboard !== false

  const authorized = (req: IncomingMessage): boolean => {
    if (keyDigest === null) return true
    const header = req.headers.authorization ?? ''
    const match = /^Bearer\s+(.+)$/i.exec(header)
    // Compare digests of equal length in constant time: no timing leak of the key or its length.
    return match !== null && timingSafeEqual(sha256(match[1]!.trim()), keyDigest)
  }

  const corsHeaders = (req: IncomingMessage): Record<string, string> => {
    const origin = req.headers.origin
    if (cors === null || origin === undefined) return {}
    if (cors === '*') return { 'access-control-allow-origin': '*' }
    if (!cors.includes(origin)) return {}
    return {
      'access-control-allow-origin': origin,
      'access-control-allow-credentials': 'true',
      vary: 'Origin',
    }
  }

  const requireKey = (
    req: IncomingMessage,
    res: ServerResponse,
    headers: Record<string, string>,
  ): boolean => {
    if (authorized(req)) return true
    sendError(
      res,
      new SseError(
        ErrorCodes.UNAUTHORIZED,
        'This endpoint needs the publish key: send `Authorization: Bearer <key>`.',
        { status: 401 },
      ),
      { ...headers, 'www-authenticate': 'Bearer' },
    )
    return false
  }

  const publish = async (
    req: IncomingMessage,
    res: ServerResponse,
    headers: Record<string, string>,
  ): Promise<void> => {
    if (!requireKey(req, res, headers)) return
    const body = await readBody(req, maxBodyBytes)
    const input = parsePublishBody(req.headers['content-type'], body)
    const result = await hub.publish(input)
    sendJson(res, 200, result, headers)
  }

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://localhost')
    const path = url.pathname
    const method = req.method ?? 'GET'
    const headers = corsHeaders(req)
    if (method === 'OPTIONS') {
      // Preflight: browsers ask before a POST with JSON or an Authorization header.
      res.writeHead(204, {
        ...headers,
        ...(headers['access-control-allow-origin'] === undefined
          ? {}
          : {
              'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
              'access-control-allow-headers': 'Authorization, Content-Type, Last-Event-ID',
              'access-control-max-age': '600',
            }),
      })
      res.end()
      return
    }
    if (path === '/events') {
      if (method !== 'GET') return methodNotAllowed(res, 'GET')
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
      hub.subscribe(req, res)
      return
    }
    if (path === '/publish') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST')
      return publish(req, res, headers)
    }
    if (path.startsWith('/clients/')) {
      if (method !== 'DELETE') return methodNotAllowed(res, 'DELETE')
      if (!requireKey(req, res, headers)) return
      const clientId = decodeURIComponent(path.slice('/clients/'.length))
      const count = await hub.closeClient(clientId)
      if (count === 0) {
        return sendError(
          res,
          new SseError(
            ErrorCodes.NOT_FOUND,
            `No connection of client ${JSON.stringify(clientId)} is open.`,
            { status: 404 },
          ),
          headers,
        )
      }
      res.writeHead(204, headers)
      res.end()
      return
    }
    if (method !== 'GET' && method !== 'HEAD') {
      return methodNotAllowed(res, 'GET')
    }
    if (path === '/clients') {
      // Client ids and addresses are personal data: behind the key when one is set.
      if (!requireKey(req, res, headers)) return
      const limit = Math.min(Number(url.searchParams.get('limit') ?? 1000) || 1000, 10_000)
      return sendJson(res, 200, { connections: hub.describeConnections(limit) }, headers)
    }
    if (path.startsWith('/topics/')) {
      const topic = decodeURIComponent(path.slice('/topics/'.length))
      return sendJson(res, 200, { topic, subscribers: hub.subscriberCount(topic) }, headers)
    }
    if (path === '/healthz') {
      const broker = hub.broker.health()
      return sendJson(
        res,
        broker.ok ? 200 : 503,
        { status: broker.ok ? 'ok' : 'degraded', broker },
        headers,
      )
    }
    if (path === '/stats') return sendJson(res, 200, hub.stats(), headers)
    if (path === '/metrics' && metrics !== null) {
      const text = await metrics.metrics()
      res.writeHead(200, { ...headers, 'content-type': metrics.contentType })
      res.end(text)
      return
    }
    if (path === '/' && dashboard) {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'cache-control': 'no-cache',
      })
      res.end(dashboardHtml)
      return
    }
    sendError(
      res,
      new SseError(
        ErrorCodes.NOT_FOUND,
        `No route for ${method} ${path}; see the API table in the README.`,
        {
          status: 404,
        },
      ),
      headers,
    )
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    route(req, res).catch((error: unknown) => {
      if (isSseError(error)) return sendError(res, error, corsHeaders(req))
      // A bug, not bad input: answer 500 and report it, never crash the process.
      if (hub.listenerCount('error') > 0)
        (hub as unknown as { emit(e: 'error', err: unknown): void }).emit('error', error)
      sendError(
        res,
        new SseError(ErrorCodes.BAD_REQUEST, 'Internal error; the hub logged it.', { status: 500 }),
      )
    })
  }

  const server = createServer(
    {
      // Slowloris guards: the whole header block within 10 s, a request body within 30 s.
      headersTimeout: 10_000,
      requestTimeout: 30_000,
      maxHeaderSize: 16_384,
    },
    handle,
  )

  let closing: Promise<void> | null = null
  return {
    hub,
    server,
    handle,
    async listen(port = 8080, host = '127.0.0.1') {
      if (keyDigest === null && options.allowAnonymousPublish !== true && !isLoopbackHost(host)) {
        throw new SseError(
          ErrorCodes.UNAUTHORIZED,
          `Refusing to listen on ${host} without a publish key: anyone could publish. Set --publish-key (or SSEHUB_PUBLISH_KEY), or pass --allow-anonymous-publish.`,
          { status: 500 },
        )
      }
      await hub.ready
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject)
        server.listen(port, host, () => {
          server.off('error', reject)
          resolve()
        })
      })
      return server.address() as AddressInfo
    },
    close() {
      closing ??= (async () => {
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        if (ownsHub) await hub.close()
        else for (const connection of [...hub.connections()]) connection.end('shutdown')
        server.closeIdleConnections()
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            server.closeAllConnections()
            resolve()
          }, shutdownTimeoutMs)
          timer.unref()
        })
        await Promise.race([closed, timeout])
        clearTimeout(timer)
      })()
      return closing
    },
  }
}
