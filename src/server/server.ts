import { createHash, timingSafeEqual } from 'node:crypto'
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http'
import { createSecureServer, type Http2SecureServer } from 'node:http2'
import type { Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import { ErrorCodes, SseError, isSseError } from '../errors.js'
import {
  Hub,
  errorBody,
  type HubOptions,
  type PublishInput,
  type PublishResult,
  type SubscribeParams,
} from '../hub/hub.js'
import { Authenticator, type JwtOptions, type TokenGrant } from './auth.js'
import { parseBatchBody, parsePublishBody, readBody } from './body.js'
import { positiveInteger } from '../options.js'
import { dashboardHtml } from './dashboard.js'
import { JSON_TYPE } from '../connection/http1.js'
import { createSocketTransport } from '../connection/socket.js'
import {
  FastPathFront,
  type FastOutcome,
  type FastRequest,
  type FastResponse,
} from './fast-path.js'
import { createMetrics } from './metrics.js'
import { RateLimiter } from './rate-limit.js'
import { acceptsGzip, createGzipTransport } from './gzip.js'
import { poll, pollTimeout } from './poll.js'
import { createWebRoutes, type LlmUpstream } from './web.js'

/** Options of {@link createHubServer}: the hub's options plus the HTTP API's. */
export interface HubServerOptions extends HubOptions, JwtOptions {
  /** An existing hub to serve; by default one is created from these options. */
  readonly hub?: Hub
  /**
   * The key that `POST /publish` and every other mutating endpoint require as
   * `Authorization: Bearer <key>`. `null`: no key (then listening on a non-loopback address needs
   * `allowAnonymousPublish`).
   * @default null
   */
  readonly publishKey?: string | null
  /**
   * Answer complete, plain HTTP/1.1 `POST /publish`, `POST /publish/batch` and `GET /events`
   * requests straight from the socket (about twice the publishes per second of node:http's
   * request cycle, and less memory per stream); anything else on the connection goes to
   * node:http. Plain HTTP only (not with TLS).
   * See docs/performance.md.
   * @default true
   */
  readonly fastPath?: boolean
  /** Allow listening on a non-loopback address without a publish key. @default false */
  readonly allowAnonymousPublish?: boolean
  /** CORS: `'*'`, a list of exact origins, or `null` for no CORS headers. @default null */
  readonly corsOrigins?: '*' | readonly string[] | null
  /** Largest request body, in bytes; larger ones get `413`. @default 1048576 */
  readonly maxBodyBytes?: number
  /** Most events in one `POST /publish/batch` (the body limit applies too). @default 1000 */
  readonly maxBatchEvents?: number
  /** Serve the dashboard page at `/`. @default true */
  readonly dashboard?: boolean
  /** Serve the demos at `/demo/chat`, `/demo/progress`, `/demo/ticker`. @default true */
  readonly demos?: boolean
  /**
   * The OpenAI-compatible upstream the chat demo relays: a base URL (`http://host:8000`, `.../v1`)
   * or the full `/v1/chat/completions` URL. `null`: a built-in mock model streams a canned
   * answer. @default null
   */
  readonly llmUrl?: string | null
  /** Sent to the upstream as `Authorization: Bearer <llmKey>`. @default null */
  readonly llmKey?: string | null
  /** The `model` the chat demo asks the upstream for. @default 'gpt-4o-mini' */
  readonly llmModel?: string
  /** Pause between the mock model's tokens, in ms. @default 60 */
  readonly mockTokenDelayMs?: number
  /** Serve `/metrics` in Prometheus text format. @default true */
  readonly metrics?: boolean
  /** How long a graceful shutdown may take before remaining sockets are cut, in ms. @default 5000 */
  readonly shutdownTimeoutMs?: number
  /**
   * Publishes per second per publisher (token subject or IP; the publish key is exempt), a token
   * bucket; past it `429` with `Retry-After`. `null` turns it off. @default 1000
   */
  readonly publishRatePerSecond?: number | null
  /** Bucket size of the publish rate limit. @default 2000 */
  readonly publishBurst?: number
  /** Time to receive a request's headers (slowloris guard), in ms. @default 10000 */
  readonly headersTimeoutMs?: number
  /** Time to receive a whole request (body included), in ms. @default 30000 */
  readonly requestTimeoutMs?: number
  /** Largest request line + headers, in bytes; larger gets `431`. @default 16384 */
  readonly maxHeaderBytes?: number
  /**
   * TLS certificate (PEM). With `tlsKey`, the server speaks HTTP/2 with an HTTP/1.1 fallback
   * (ALPN), so one page can hold far more than six streams to the hub. @default null
   */
  readonly tlsCert?: string | Buffer | null
  /** TLS private key (PEM), with `tlsCert`. @default null */
  readonly tlsKey?: string | Buffer | null
  /**
   * Compress event streams with gzip (flushed per event) for clients that accept it. Off by
   * default: see docs/web.md for its cost in CPU and memory per connection. @default false
   */
  readonly gzip?: boolean
}

function llmOf(options: HubServerOptions): LlmUpstream | null {
  const url = options.llmUrl ?? null
  if (url === null) return null
  if (!/^https?:\/\/\S+$/.test(url)) {
    throw new TypeError(`Expected \`llmUrl\` to be an http(s) URL, got ${JSON.stringify(url)}`)
  }
  return {
    url,
    ...(options.llmKey === undefined || options.llmKey === null ? {} : { apiKey: options.llmKey }),
    ...(options.llmModel === undefined ? {} : { model: options.llmModel }),
  }
}

/** Who is making a request. */
type Principal =
  | { readonly kind: 'key' }
  | { readonly kind: 'token'; readonly grant: TokenGrant }
  | { readonly kind: 'anonymous' }

const ANONYMOUS: Principal = { kind: 'anonymous' }
const KEY: Principal = { kind: 'key' }

/** A hub behind its HTTP API. */
export interface HubServer {
  /** The hub. */
  readonly hub: Hub
  /**
   * The node:http server. With `tlsCert`/`tlsKey` it does not listen: {@link HubServer.http2Server}
   * does, with the same handler.
   */
  readonly server: Server
  /** The HTTP/2 (+ HTTP/1.1) TLS server with `tlsCert`/`tlsKey`, else `null`. */
  readonly http2Server: Http2SecureServer | null
  /** `https` with `tlsCert`/`tlsKey`, else `http`. */
  readonly protocol: 'http' | 'https'
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

/** What the auth and publish steps read of a request (node:http's or the fast path's). */
interface RequestView {
  readonly headers: IncomingHttpHeaders
  readonly remoteAddress: string | undefined
}

const noQuery = new URLSearchParams()

/** The headers of every JSON answer. */
function jsonHeaders(body: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...extra,
    'content-type': JSON_TYPE,
    'content-length': String(Buffer.byteLength(body)),
    'cache-control': 'no-store',
  }
}

function internalError(): SseError {
  return new SseError(ErrorCodes.INTERNAL, 'Internal error; the hub reported it.')
}

/** An error as a fast-path answer. */
function errorAnswer(error: SseError, extra?: Record<string, string>): FastResponse {
  const body = errorBody(error)
  return extra === undefined
    ? { status: error.status, body }
    : { status: error.status, headers: extra, body }
}

function sendJson(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  const body = JSON.stringify(value)
  res.writeHead(status, jsonHeaders(body, headers))
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
  res.writeHead(error.status, jsonHeaders(body, headers))
  res.end(body)
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  sendError(
    res,
    new SseError(ErrorCodes.METHOD_NOT_ALLOWED, `Use ${allow} on this path.`),
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
 * | `POST /publish/batch` | publish a JSON array of events, in order |
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
  const maxBodyBytes = positiveInteger('maxBodyBytes', options.maxBodyBytes ?? 1_048_576)
  const maxBatchEvents = positiveInteger('maxBatchEvents', options.maxBatchEvents ?? 1_000)
  const cors = options.corsOrigins ?? null
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? 5_000
  const metrics = options.metrics === false ? null : createMetrics(hub)
  const dashboard = options.dashboard !== false
  const auth = new Authenticator(options)
  hub.on('revoked', (clientId, at) => auth.revoke(clientId, at))
  const rate = options.publishRatePerSecond === undefined ? 1000 : options.publishRatePerSecond
  const limiter =
    rate === null ? null : new RateLimiter(rate, options.publishBurst ?? 2 * Math.ceil(rate))
  // With no key and no JWT, the hub is open (the listen() guard keeps that to loopback).
  const open = keyDigest === null && !auth.enabled

  const isPublishKey = (req: Pick<RequestView, 'headers'>): boolean => {
    if (keyDigest === null) return false
    const match = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')
    // Compare digests of equal length in constant time: no timing leak of the key or its length.
    return match !== null && timingSafeEqual(sha256(match[1]!.trim()), keyDigest)
  }

  /** The publish key, a verified token (401 when bad), or nobody. */
  const principalOf = async (
    req: Pick<RequestView, 'headers'>,
    query: URLSearchParams,
  ): Promise<Principal> => {
    if (isPublishKey(req)) return { kind: 'key' }
    if (auth.enabled) {
      const token = auth.tokenOf(req, query)
      if (token !== undefined) return { kind: 'token', grant: await auth.verify(token) }
    }
    return { kind: 'anonymous' }
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

  const unauthorized = new SseError(
    ErrorCodes.UNAUTHORIZED,
    auth.enabled
      ? 'This endpoint needs a token or the publish key: send `Authorization: Bearer <token or key>`.'
      : 'This endpoint needs the publish key: send `Authorization: Bearer <key>`.')

  /** Operator endpoints (close, revoke, list clients): the key, or a token that may publish `*`. */
  const requireOperator = async (req: IncomingMessage, query: URLSearchParams): Promise<void> => {
    if (open) return
    const principal = await principalOf(req, query)
    if (principal.kind === 'key') return
    if (principal.kind === 'token') {
      if (principal.grant.publish.includes('*')) return
      throw new SseError(
        ErrorCodes.FORBIDDEN,
        'This endpoint needs the publish key or a token that may publish `*`.')
    }
    throw unauthorized
  }

  // The publish steps, shared by node:http's path and the socket-level fast path.
  /** Who publishes: 401 unless the hub is open or the request has the key or a valid token. */
  const publisherOf = async (req: RequestView, query: URLSearchParams): Promise<Principal> => {
    const principal: Principal = open ? { kind: 'anonymous' } : await principalOf(req, query)
    if (principal.kind === 'anonymous' && !open) throw unauthorized
    return principal
  }

  /** Seconds to wait before this publisher may publish `cost` events (0: now). */
  const publishWait = (req: RequestView, principal: Principal, cost = 1): number => {
    if (limiter === null || principal.kind === 'key') return 0
    return limiter.take(
      principal.kind === 'token' ? `sub:${principal.grant.sub ?? ''}` : `ip:${req.remoteAddress}`,
      Date.now(),
      cost,
    )
  }

  const rateLimited = (wait: number): SseError =>
    new SseError(
      ErrorCodes.RATE_LIMITED,
      `Too many publishes; retry in ${wait} s (publishRatePerSecond).`)

  /** 403 unless the token may publish to the targets of `input`. */
  const authorizeInput = (principal: Principal, input: PublishInput): void => {
    if (principal.kind !== 'token') return
    const topics =
      input.topic === undefined ? [] : typeof input.topic === 'string' ? [input.topic] : input.topic
    auth.authorizePublish(principal.grant, {
      topics: Array.isArray(topics) ? topics.map(String) : [String(topics)],
      clientId: input.clientId !== undefined,
      all: input.all === true,
    })
  }

  /** Parses, authorizes and publishes a body. */
  const publishBody = async (
    principal: Principal,
    contentType: string | undefined,
    body: Buffer,
  ): Promise<PublishResult> => {
    const input = parsePublishBody(contentType, body)
    authorizeInput(principal, input)
    return hub.publish(input)
  }

  /**
   * `POST /publish/batch`: parses, authorizes every event, takes one rate token per event, and
   * publishes them in order. Resolves with the answer's status, body and extra headers.
   */
  const publishBatch = async (
    req: RequestView,
    principal: Principal,
    body: Buffer,
  ): Promise<{ status: number; body: string; headers: Record<string, string> }> => {
    const inputs = parseBatchBody(req.headers['content-type'], body, maxBatchEvents)
    for (const input of inputs) authorizeInput(principal, input)
    if (limiter !== null && principal.kind !== 'key' && inputs.length > limiter.burst) {
      throw new SseError(
        ErrorCodes.BAD_REQUEST,
        `A batch may hold at most ${limiter.burst} events (publishBurst) for this publisher, got ${inputs.length}; split it.`)
    }
    const wait = publishWait(req, principal, inputs.length)
    if (wait > 0) {
      const error = rateLimited(wait)
      return { status: 429, body: errorBody(error), headers: { 'retry-after': String(wait) } }
    }
    const results = await hub.publishMany(inputs)
    return { status: 200, body: JSON.stringify({ results }), headers: {} }
  }

  const publish = async (
    req: IncomingMessage,
    res: ServerResponse,
    query: URLSearchParams,
    headers: Record<string, string>,
  ): Promise<void> => {
    const view = { headers: req.headers, remoteAddress: req.socket.remoteAddress }
    const principal = await publisherOf(view, query)
    const wait = publishWait(view, principal)
    if (wait > 0) {
      // Drain the body so the connection stays usable, then refuse.
      req.resume()
      return sendError(res, rateLimited(wait), { ...headers, 'retry-after': String(wait) })
    }
    const body = await readBody(req, maxBodyBytes)
    sendJson(res, 200, await publishBody(principal, req.headers['content-type'], body), headers)
  }

  /** A fast-path answer to a failed request: the SseError's own, else a 500 (reported). */
  const fastError = (error: unknown): FastResponse => {
    if (isSseError(error)) return errorAnswer(error)
    hub.reportError(error instanceof Error ? error : new Error(String(error)))
    return errorAnswer(internalError())
  }

  const publishAnswer = (result: PublishResult): FastResponse => ({
    status: 200,
    body: JSON.stringify(result),
  })

  /**
   * The fast path's requests: a whole request in, an answer or a stream out, never a throw. A
   * publish by the key or to an open hub, on the memory broker, is answered in the same tick.
   */
  const fastHandle = (req: FastRequest, take: () => Socket): FastOutcome | Promise<FastOutcome> => {
    if (req.route !== 'publish') return fastHandleAsync(req, take)
    // Tokens need an (asynchronous) signature check: they take the other path.
    const principal: Principal | null = open ? ANONYMOUS : isPublishKey(req) ? KEY : null
    if (principal === null) return fastHandleAsync(req, take)
    try {
      const wait = publishWait(req, principal)
      if (wait > 0) return errorAnswer(rateLimited(wait), { 'retry-after': String(wait) })
      const input = parsePublishBody(req.headers['content-type'], req.body)
      const result = hub.publishNow(input)
      if (result !== undefined) return publishAnswer(result)
      return hub.publish(input).then(publishAnswer, fastError)
    } catch (error) {
      return fastError(error)
    }
  }

  const fastHandleAsync = async (req: FastRequest, take: () => Socket): Promise<FastOutcome> => {
    try {
      if (req.route === 'events') {
        // gzip streams go through node:http (the gzip transport wraps a ServerResponse).
        if (options.gzip === true && acceptsGzip(req)) return 'hand-over'
        const params = await streamParams(req, new URLSearchParams(req.query))
        const header = req.headers['last-event-id']
        const socket = take()
        inFlight++
        socket.once('close', () => inFlight--)
        hub.attach(
          createSocketTransport(socket),
          header === undefined ? params : { ...params, lastEventId: header },
        )
        return 'streaming'
      }
      const principal = await publisherOf(req, noQuery)
      if (req.route === 'batch') {
        const answer = await publishBatch(req, principal, req.body)
        return { status: answer.status, headers: answer.headers, body: answer.body }
      }
      const wait = publishWait(req, principal)
      if (wait > 0) return errorAnswer(rateLimited(wait), { 'retry-after': String(wait) })
      return publishAnswer(await publishBody(principal, req.headers['content-type'], req.body))
    } catch (error) {
      return fastError(error)
    }
  }

  /** A stream's parameters from its query and token (401/403 when the token does not allow it). */
  const streamParams = async (
    req: Pick<RequestView, 'headers'>,
    query: URLSearchParams,
  ): Promise<SubscribeParams> => {
    const topics = query.getAll('topic')
    const lastEventId = query.get('lastEventId') ?? query.get('last_event_id') ?? undefined
    const token = auth.enabled ? auth.tokenOf(req, query) : undefined
    const { clientId, expiresAt } = await auth.authorizeSubscribe(
      token,
      topics,
      query.get('clientId') ?? undefined,
    )
    return {
      topics,
      ...(clientId === undefined ? {} : { clientId }),
      ...(lastEventId === undefined ? {} : { lastEventId }),
      ...(expiresAt === undefined ? {} : { expiresAt }),
    }
  }

  /** `GET /events` (a stream) or, with `longPoll` (the CORS headers), `GET /poll`. */
  const subscribe = async (
    req: IncomingMessage,
    res: ServerResponse,
    query: URLSearchParams,
    longPoll?: Record<string, string>,
  ): Promise<void> => {
    const params = await streamParams(req, query)
    if (longPoll === undefined) {
      if (options.gzip === true && acceptsGzip(req)) {
        const header = req.headers['last-event-id']
        hub.attach(
          createGzipTransport(req, res),
          typeof header === 'string' ? { ...params, lastEventId: header } : params,
        )
        return
      }
      hub.subscribe(req, res, params)
      return
    }
    const timeoutMs = pollTimeout(query.get('timeoutMs'))
    if (timeoutMs === undefined) {
      throw new SseError(
        ErrorCodes.BAD_REQUEST,
        'Expected `timeoutMs` to be an integer number of milliseconds (at most 30000).')
    }
    const header = req.headers['last-event-id']
    poll(
      hub,
      req,
      res,
      typeof header === 'string' && header !== '' ? { ...params, lastEventId: header } : params,
      timeoutMs,
      longPoll,
    )
  }

  const web = createWebRoutes({
    hub,
    dashboard,
    demos: options.demos !== false,
    llm: llmOf(options),
    mockTokenDelayMs: options.mockTokenDelayMs ?? 60,
    // EventSource cannot send headers: the dashboard feed takes the key as `?key=` too.
    isOperator: async (req, query) => {
      if (open || isPublishKey(req)) return true
      const key = query.get('key')
      if (keyDigest !== null && key !== null && timingSafeEqual(sha256(key), keyDigest)) return true
      if (!auth.enabled) return false
      const principal = await principalOf(req, query)
      return principal.kind === 'token' && principal.grant.publish.includes('*')
    },
    send: (res, status, value) => sendJson(res, status, value),
  })

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // No WHATWG URL parse per request (it is a large share of a publish): split at '?', build the
    // query only when a route reads it. Paths are matched as sent, without normalisation.
    const raw = req.url ?? '/'
    const mark = raw.indexOf('?')
    const path = mark === -1 ? raw : raw.slice(0, mark)
    let parsed: URLSearchParams | undefined
    const query = (): URLSearchParams =>
      (parsed ??= new URLSearchParams(mark === -1 ? '' : raw.slice(mark + 1)))
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
      return subscribe(req, res, query())
    }
    if (path === '/poll') {
      if (method !== 'GET') return methodNotAllowed(res, 'GET')
      return subscribe(req, res, query(), headers)
    }
    if (path === '/publish') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST')
      return publish(req, res, query(), headers)
    }
    if (path === '/publish/batch') {
      if (method !== 'POST') return methodNotAllowed(res, 'POST')
      const view = { headers: req.headers, remoteAddress: req.socket.remoteAddress }
      const principal = await publisherOf(view, query())
      const answer = await publishBatch(view, principal, await readBody(req, maxBodyBytes))
      res.writeHead(answer.status, jsonHeaders(answer.body, { ...headers, ...answer.headers }))
      res.end(answer.body)
      return
    }
    if (path.startsWith('/clients/') && path.endsWith('/revoke')) {
      if (method !== 'POST') return methodNotAllowed(res, 'POST')
      await requireOperator(req, query())
      await hub.revokeClient(decodeURIComponent(path.slice('/clients/'.length, -'/revoke'.length)))
      res.writeHead(204, headers)
      res.end()
      return
    }
    if (path.startsWith('/clients/')) {
      if (method !== 'DELETE') return methodNotAllowed(res, 'DELETE')
      await requireOperator(req, query())
      const clientId = decodeURIComponent(path.slice('/clients/'.length))
      const count = await hub.closeClient(clientId)
      if (count === 0) {
        return sendError(
          res,
          new SseError(
            ErrorCodes.NOT_FOUND,
            `No connection of client ${JSON.stringify(clientId)} is open.`),
          headers,
        )
      }
      res.writeHead(204, headers)
      res.end()
      return
    }
    if (path.startsWith('/demo/') || path === '/dashboard/events') {
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value)
      if (await web.handle(req, res, path, query)) return
    }
    if (method !== 'GET' && method !== 'HEAD') {
      return methodNotAllowed(res, 'GET')
    }
    if (path === '/clients') {
      // Client ids and addresses are personal data: behind the key when one is set.
      await requireOperator(req, query())
      const limit = Math.min(Number(query().get('limit') ?? 1000) || 1000, 10_000)
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
        `No route for ${method} ${path}; see the API table in the README.`),
      headers,
    )
  }

  // Requests whose response has not closed yet: graceful shutdown waits for them, not for sockets.
  let inFlight = 0
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    inFlight++
    res.once('close', () => inFlight--)
    if (
      req.httpVersionMajor === 1 &&
      req.httpVersionMinor === 1 &&
      req.headers.host === undefined
    ) {
      return sendError(
        res,
        new SseError(ErrorCodes.BAD_REQUEST, 'HTTP/1.1 requests need a Host header; send one.'),
      )
    }
    route(req, res).catch((error: unknown) => {
      if (isSseError(error)) return sendError(res, error, corsHeaders(req))
      // A bug, not bad input: answer 500 and report it, never crash the process.
      hub.reportError(error instanceof Error ? error : new Error(String(error)))
      sendError(res, internalError())
    })
  }

  const tlsCert = options.tlsCert ?? null
  const tlsKey = options.tlsKey ?? null
  if ((tlsCert === null) !== (tlsKey === null)) {
    throw new TypeError('Expected both `tlsCert` and `tlsKey` (PEM), or neither.')
  }
  const http1 = createServer(
    {
      // Slowloris guards: the whole header block within 10 s, a request body within 30 s.
      headersTimeout: options.headersTimeoutMs ?? 10_000,
      requestTimeout: options.requestTimeoutMs ?? 30_000,
      maxHeaderSize: options.maxHeaderBytes ?? 16_384,
      // Node checks those timeouts only this often (30 s by default): check every second.
      connectionsCheckingInterval: Math.min(1_000, options.headersTimeoutMs ?? 10_000),
      // Checked in handle() instead, so that the 400 has a JSON body like every other refusal.
      requireHostHeader: false,
    },
    handle,
  )
  const http2Server: Http2SecureServer | null =
    tlsCert === null || tlsKey === null
      ? null
      : createSecureServer(
          {
            allowHTTP1: true,
            cert: tlsCert,
            key: tlsKey,
            maxSessionMemory: 32,
            settings: { maxHeaderListSize: options.maxHeaderBytes ?? 16_384 },
          },
          // The compat request/response have the API the handler and the node adapter use.
          handle as unknown as Parameters<typeof createSecureServer>[1] & object,
        )
  // http2's server has no closeAllConnections(): track its sockets to cut them at shutdown.
  const secureSockets = new Set<Socket>()
  const server: Server | Http2SecureServer = http2Server ?? http1
  if (http2Server !== null) {
    http2Server.on('secureConnection', (socket: Socket) => {
      secureSockets.add(socket)
      socket.once('close', () => secureSockets.delete(socket))
    })
    http2Server.setTimeout(0)
  }
  const front =
    http2Server === null && options.fastPath !== false
      ? new FastPathFront(http1, {
          maxHeaderBytes: options.maxHeaderBytes ?? 16_384,
          maxBodyBytes,
          handle: fastHandle,
          onRequest: (delta) => (inFlight += delta),
          report: (error) => hub.reportError(error),
        })
      : null
  const closeAll = (): void => {
    front?.closeAll()
    if (server === http1) http1.closeAllConnections()
    else for (const socket of secureSockets) socket.destroy()
  }
  // Malformed requests, huge URLs or headers: a clean JSON 4xx, never a crash or a hang.
  http1.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy()
      return
    }
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW'
    const timeout = error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    const status = tooLarge ? 431 : timeout ? 408 : 400
    const body = errorBody(
      new SseError(
        tooLarge
          ? ErrorCodes.HEADERS_TOO_LARGE
          : timeout
            ? ErrorCodes.REQUEST_TIMEOUT
            : ErrorCodes.BAD_REQUEST,
        tooLarge
          ? `The URL and headers are larger than ${options.maxHeaderBytes ?? 16_384} bytes; send fewer topics per URL or smaller cookies.`
          : timeout
            ? 'The request took too long to arrive.'
            : 'The request is not valid HTTP.',
      ),
    )
    const reason = tooLarge
      ? 'Request Header Fields Too Large'
      : timeout
        ? 'Request Timeout'
        : 'Bad Request'
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\ncontent-type: ${JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
    )
  })

  let closing: Promise<void> | null = null
  return {
    hub,
    server: http1,
    http2Server,
    protocol: server === http1 ? 'http' : 'https',
    handle,
    async listen(port = 8080, host = '127.0.0.1') {
      if (open && options.allowAnonymousPublish !== true && !isLoopbackHost(host)) {
        throw new SseError(
          ErrorCodes.UNAUTHORIZED,
          `Refusing to listen on ${host} without a publish key: anyone could publish. Set --publish-key (or SSEHUB_PUBLISH_KEY), or pass --allow-anonymous-publish.`)
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
        web.close()
        front?.close()
        const closed = new Promise<void>((resolve) => server.close(() => resolve()))
        if (ownsHub) await hub.close()
        else for (const connection of [...hub.connections()]) connection.end('shutdown')
        // Once every response finished (ended streams flush, publishes answer), the sockets left
        // are idle keep-alives: close them all.
        const sweeper = setInterval(() => {
          if (inFlight === 0) closeAll()
          else if (server === http1) {
            http1.closeIdleConnections()
            front?.closeIdle()
          }
        }, 10)
        let timer: NodeJS.Timeout | undefined
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(() => {
            closeAll()
            resolve()
          }, shutdownTimeoutMs)
          timer.unref()
        })
        await Promise.race([closed, timeout])
        clearTimeout(timer)
        clearInterval(sweeper)
      })()
      return closing
    },
  }
}
