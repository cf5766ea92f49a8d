/**
 * `createHubServer`: the HTTP API over a hub, as wiring. The parts, each in its own file:
 * server-options.ts (options, defaults, validation), access.ts (key, tokens, the publisher and
 * operator rules, rate limits), routes.ts (the route table; what the fast front takes),
 * pipeline.ts (every handler, transport-neutral), node-front.ts (node:http and HTTP/2),
 * connection/fast-front.ts (the socket-level front), lifecycle.ts (listen, graceful shutdown),
 * mount.ts (optional parts beside the API, such as the showcase's dashboard and demos).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { createSecureServer, type Http2SecureServer } from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import { FastFront, type FastOutcome } from '../connection/fast-front.js'
import type { FastRequest } from '../connection/fast-request.js'
import { createSocketTransport } from '../connection/socket.js'
import { Hub } from '../hub/hub.js'
import { Relays } from '../relay/relays.js'
import { Access } from './access.js'
import { clientAddress } from './client-address.js'
import type { Registry } from 'prom-client'
import { createMetrics } from './metrics.js'
import { createNodeFront } from './node-front.js'
import { isAnswer, type Outcome, Pipeline } from './pipeline.js'
import { fastTakes, resolveRoute, type Route, type RouteFeatures } from './routes.js'
import { handoff, isLoopbackHost, listen, shutdown, type LifecycleParts } from './lifecycle.js'
import { resolveServerOptions, type AuthRefusal, type HubServerOptions } from './server-options.js'

export { isLoopbackHost }
export type { AuthRefusal, HubServerOptions }

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
  /**
   * Serves connections accepted by another process instead of listening (`ssehub serve
   * --workers`: the primary accepts and hands each connection to a worker). Refuses `host` as
   * {@link HubServer.listen} does; resolves with the function that takes a connected socket.
   */
  handoff(host: string): Promise<(socket: Socket) => void>
  /** The registry of `/metrics` (prom-client's), or `null` with `metrics: false`. */
  readonly metrics: Registry | null
}

/**
 * Creates the hub server: the HTTP API over a {@link Hub}.
 *
 * | route | what |
 * | --- | --- |
 * | `GET /events?topic=T&clientId=C&lastEventId=ID` | subscribe (text/event-stream) |
 * | `GET /poll?topic=T&lastEventId=ID&timeoutMs=N` | long poll (a JSON array of events) |
 * | `POST /publish` | publish (JSON or form) |
 * | `POST /publish/batch` | publish a JSON array of events, in order |
 * | `DELETE /clients/{clientId}` | end every connection of a client |
 * | `POST /clients/{clientId}/revoke` | end them and refuse the client's current tokens |
 * | `POST /relays`, `POST /relays/{id}/abort` | start (or join) a relayed generation, stop it |
 * | `GET /clients`, `GET /topics/{topic}`, `GET /stats`, `GET /healthz`, `GET /metrics` | introspection |
 *
 * @throws {TypeError | RangeError} for a bad option, naming it.
 */
export function createHubServer(options: HubServerOptions = {}): HubServer {
  const resolved = resolveServerOptions(options)
  const hub = options.hub ?? new Hub(options)
  const access = new Access(resolved.publishKey, options, {
    perSecond: resolved.publishRatePerSecond,
    burst: resolved.publishBurst,
    anonymousIsPublic: resolved.allowAnonymousPublish,
  })
  hub.on('revoked', (clientId, at) => access.auth.revoke(clientId, at))
  const report = (error: Error): void => hub.reportError(error)
  const relays = new Relays(hub, {
    upstreams: resolved.relayUpstreams,
    timeoutMs: resolved.relayTimeoutMs,
    maxTokens: resolved.relayMaxTokens,
    maxRunning: resolved.maxRelays,
  })
  const metricsRegistry = resolved.metrics ? createMetrics(hub) : null
  const pipeline = new Pipeline(hub, access, {
    relays,
    maxBatchEvents: resolved.maxBatchEvents,
    metrics: metricsRegistry === null ? null : metricsText(metricsRegistry, resolved.metricsSource),
    report,
    authRefused: resolved.onAuthRefused,
  })
  const features: RouteFeatures = { metrics: resolved.metrics }
  const mounts = resolved.mounts.map((mount) => mount(hub))

  // Requests whose answer has not finished: graceful shutdown waits for them, not for sockets.
  let inFlight = 0
  const onRequest = (delta: 1 | -1): void => {
    inFlight += delta
  }
  const node = createNodeFront({
    hub,
    pipeline,
    options: resolved,
    features,
    mounts,
    access,
    onRequest,
  })

  const http1 = createServer(
    {
      // Slowloris guards: the whole header block within 10 s, a request body within 30 s.
      headersTimeout: resolved.headersTimeoutMs,
      requestTimeout: resolved.requestTimeoutMs,
      maxHeaderSize: resolved.maxHeaderBytes,
      // Node checks those timeouts only this often (30 s by default): check every second.
      connectionsCheckingInterval: Math.min(1_000, resolved.headersTimeoutMs),
      // Checked by the node front instead, so that the 400 has a JSON body like every refusal.
      requireHostHeader: false,
    },
    node.handle,
  )
  // One more than allowed, so that the front can tell "too many" from "exactly the limit".
  http1.maxHeadersCount = resolved.maxHeaderCount + 1
  // Malformed requests, huge URLs or headers: a clean JSON 4xx, never a crash or a hang.
  http1.on('clientError', node.clientError)

  const { tlsCert, tlsKey } = resolved
  const http2Server: Http2SecureServer | null =
    tlsCert === null || tlsKey === null
      ? null
      : createSecureServer(
          {
            allowHTTP1: true,
            cert: tlsCert,
            key: tlsKey,
            maxSessionMemory: 32,
            settings: { maxHeaderListSize: resolved.maxHeaderBytes },
          },
          // The compat request/response have the API the handler and the node adapter use.
          node.handle as unknown as Parameters<typeof createSecureServer>[1] & object,
        )
  // http2's server has no closeAllConnections(): track its sockets to cut them at shutdown.
  const secureSockets = new Set<Socket>()
  if (http2Server !== null) {
    http2Server.on('secureConnection', (socket: Socket) => {
      secureSockets.add(socket)
      socket.once('close', () => secureSockets.delete(socket))
    })
    http2Server.setTimeout(0)
  }

  const { trustProxy } = resolved
  const fastHandle = (
    request: FastRequest,
    route: Route,
    take: () => Socket,
  ): FastOutcome | Promise<FastOutcome> => {
    // Behind a trusted proxy: the client's address from its forwarding headers (the front set
    // the peer's).
    if (trustProxy !== null)
      request.remoteAddress = clientAddress(trustProxy, request.remoteAddress, request.headers)
    // A FastRequest is a HubRequest as it is: no view object per request.
    const outcome = pipeline.run(route, request, request.body)
    if (!(outcome instanceof Promise)) {
      // The only outcomes of publish are answers (the synchronous path).
      if (isAnswer(outcome)) return outcome
    }
    return Promise.resolve(outcome).then((settled) => fastStream(settled, take))
  }
  // A stream counts as in flight until its socket closes. One shared listener, and no closure
  // created in fastHandle's scope: a closure there would keep `take`, and through it the fast
  // front's whole per-connection scope (its request buffer included), alive for every stream.
  const streamClosed = (): void => onRequest(-1)
  const fastStream = (settled: Outcome, take: () => Socket): FastOutcome => {
    if (isAnswer(settled)) return settled
    // The fast front takes no poll route: a stream.
    const socket = take()
    onRequest(1)
    socket.once('close', streamClosed)
    hub.attach(createSocketTransport(socket), settled.params)
    return 'streaming'
  }
  const fast =
    http2Server === null && resolved.fastPath
      ? new FastFront<Route>(http1, {
          maxHeaderBytes: resolved.maxHeaderBytes,
          maxBodyBytes: resolved.maxBodyBytes,
          maxHeaderCount: resolved.maxHeaderCount,
          sendTimeoutMs: resolved.sendTimeoutMs,
          accepts: (request, followed) => {
            let route: Route
            try {
              route = resolveRoute(request.method, request.path, features)
            } catch {
              return null // node:http answers the 404/405 (one writer of those)
            }
            return fastTakes({ route, headers: request.headers, followed }, { gzip: resolved.gzip })
              ? route
              : null
          },
          handle: fastHandle,
          onRequest,
          report,
        })
      : null

  const server: Server | Http2SecureServer = http2Server ?? http1
  const parts: LifecycleParts = {
    hub,
    ownsHub: options.hub === undefined,
    server,
    refusesPublicHost: access.open && !resolved.allowAnonymousPublish,
    shutdownTimeoutMs: resolved.shutdownTimeoutMs,
    inFlight: () => inFlight,
    relays,
    closeIdle() {
      if (server !== http1) return
      http1.closeIdleConnections()
      fast?.closeIdle()
    },
    closeAll() {
      fast?.closeAll()
      if (server === http1) http1.closeAllConnections()
      else for (const socket of secureSockets) socket.destroy()
    },
    stop() {
      for (const mount of mounts) mount.close()
      fast?.close()
      node.close()
    },
  }

  let closing: Promise<void> | null = null
  return {
    hub,
    server: http1,
    http2Server,
    protocol: server === http1 ? 'http' : 'https',
    handle: node.handle,
    listen: (port = 8080, host = '127.0.0.1') => listen(parts, port, host),
    close: () => (closing ??= shutdown(parts)),
    handoff: (host) => handoff(parts, host),
    metrics: metricsRegistry,
  }
}

/** The text of `/metrics`: this server's registry, or the whole hub's from `source`. */
function metricsText(
  registry: Registry,
  source: (() => Promise<string>) | null,
): { metrics(): Promise<string>; readonly contentType: string } {
  if (source === null) return registry
  return { metrics: source, contentType: registry.contentType }
}
