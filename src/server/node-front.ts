/**
 * The node:http front (and HTTP/2 with TLS): turns node's requests into the pipeline's
 * {@link HubRequest}s and writes its outcomes. It adds what only a general HTTP server needs:
 * CORS, the mounted web part, bodies read as streams (bounded), gzip streams and long polls, and
 * the guards of a connection that node:http lacks — a bound on unanswered pipelined requests, a
 * send timeout for a peer that does not read, and error answers that wait for the answers owed
 * before them.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { JSON_TYPE } from '../connection/http1.js'
import { ErrorCodes, SseError, errorBody, isSseError } from '../errors.js'
import type { Hub } from '../hub/hub.js'
import { clientAddress } from './client-address.js'
import { readBody } from './body.js'
import { corsHeaders, preflightHeaders } from './cors.js'
import { createGzipTransport, acceptsGzip } from './gzip.js'
import {
  isAnswer,
  needsBody,
  type Answer,
  type HubRequest,
  type Pipeline,
  type RequestLine,
} from './pipeline.js'
import { poll } from './poll.js'
import type { Access } from './access.js'
import { allowOf, resolveRoute, type Route, type RouteFeatures } from './routes.js'
import type { ResolvedServerOptions } from './server-options.js'
import type { HubServerMount, MountRequest } from './mount.js'

/** What the node front needs. */
export interface NodeFrontContext {
  readonly hub: Hub
  readonly pipeline: Pipeline
  readonly options: ResolvedServerOptions
  readonly features: RouteFeatures
  /** Mounted parts, asked for what the API's routes do not take. */
  readonly mounts: readonly HubServerMount[]
  readonly access: Access
  /** Called when a request starts and when its response closed (graceful shutdown counts them). */
  readonly onRequest: (delta: 1 | -1) => void
}

/** One HTTP/1 connection's state, for the guards node:http lacks. */
interface SocketState {
  /** Requests received whose response has not closed yet. */
  owed: IncomingMessage[]
  /** An error answer that waits for the answers owed before it. */
  error: string | null
  /** The connection carries an event stream: nothing else may be written into it. */
  stream: boolean
  /** Since when output has been waiting for the peer to read (0: it is not). */
  stalledSince: number
  /** The handling of the requests before (`null`: none pending): they take effect in order. */
  turn: Promise<void> | null
}

const socketStates = new WeakMap<Socket, SocketState>()

/** The node:http request handler and the connection guards it keeps. */
export interface NodeFront {
  /** The request handler (node:http's and http2's compat API). */
  readonly handle: (req: IncomingMessage, res: ServerResponse) => void
  /** node:http's `clientError`: a JSON 4xx in order after the answers owed, never into a stream. */
  readonly clientError: (error: NodeJS.ErrnoException, socket: Socket) => void
  /** Stops the send-timeout sweep. */
  close(): void
}

/** Writes `answer` on a node:http (or http2 compat) response. */
export function writeAnswer(
  res: ServerResponse,
  answer: Answer,
  extra: Readonly<Record<string, string>> = {},
): void {
  if (res.headersSent) {
    // A stream or another answer is already under way: nothing can be said on it any more.
    res.destroy()
    return
  }
  // The fast front writes the same headers in the same order (fast-front.ts responseText).
  const headers: Record<string, string> = { ...extra, ...answer.headers }
  if (answer.body !== undefined) {
    headers['content-type'] = answer.type ?? JSON_TYPE
    headers['content-length'] = String(Buffer.byteLength(answer.body))
  }
  headers['cache-control'] ??= 'no-store'
  res.writeHead(answer.status, headers)
  res.end(answer.body)
}

// The raw answers of requests node:http could not parse (written to the socket, not a response).
const REASONS: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  431: 'Request Header Fields Too Large',
}

/** Creates the node:http front over `context`. */
export function createNodeFront(context: NodeFrontContext): NodeFront {
  const { hub, pipeline, options, features, mounts, access } = context
  // The HTTP/1 connections of this front, for the send-timeout sweep.
  const sockets = new Set<Socket>()
  const stateOf = (socket: Socket): SocketState => {
    let state = socketStates.get(socket)
    if (state === undefined) {
      state = { owed: [], error: null, stream: false, stalledSince: 0, turn: null }
      socketStates.set(socket, state)
      sockets.add(socket)
      // `on`, not `once` (a socket closes once; `once` would wrap the listener per socket), and
      // one shared function called with the socket as `this`: no closure per connection.
      socket.on('close', forget)
    }
    return state
  }
  function forget(this: Socket): void {
    sockets.delete(this)
    socketStates.delete(this)
  }

  // One sweep a second: a connection whose answers wait unread for `sendTimeoutMs` is closed
  // (node:http stops reading from such a peer, but never times it out). Streams are bounded by
  // the hub's `maxQueuedBytes` instead.
  const sweeper = setInterval(() => {
    const now = Date.now()
    for (const socket of sockets) {
      const state = socketStates.get(socket)
      if (state === undefined) continue
      if (state.stream || socket.writableLength === 0) state.stalledSince = 0
      else if (state.stalledSince === 0) state.stalledSince = now
      else if (now - state.stalledSince > options.sendTimeoutMs) socket.destroy()
    }
  }, 1_000)
  sweeper.unref()

  // Answers the error waits for: those of requests that arrived whole. A request cut short by
  // the error (or a timeout) will never be answered; waiting for it would hang the connection.
  const waitsFor = (state: SocketState): boolean => {
    for (const req of state.owed) if (req.complete) return true
    return false
  }
  const settle = (socket: Socket, state: SocketState, req: IncomingMessage): void => {
    const at = state.owed.indexOf(req)
    if (at !== -1) state.owed.splice(at, 1)
    if (state.error !== null && !waitsFor(state) && !socket.destroyed) {
      socket.end(state.error)
      state.error = null
    }
  }

  const refuse = (
    res: ServerResponse,
    error: SseError,
    cors: Record<string, string>,
    req?: RequestLine,
  ): void => {
    const allow = allowOf(error)
    writeAnswer(res, pipeline.fail(error, req), allow === undefined ? cors : { ...cors, allow })
  }
  // The request as a refusal names it (a mounted part's 401 reaches here, not the pipeline).
  const lineOf = (req: IncomingMessage): RequestLine => {
    const raw = req.url ?? '/'
    const mark = raw.indexOf('?')
    return {
      method: req.method ?? 'GET',
      path: mark === -1 ? raw : raw.slice(0, mark),
      remoteAddress: clientAddress(options.trustProxy, req.socket.remoteAddress, req.headers),
    }
  }

  const route = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    // No WHATWG URL parse per request: split at '?', build the query only when a route reads it.
    // Paths are matched as sent, without normalisation.
    const raw = req.url ?? '/'
    const mark = raw.indexOf('?')
    const path = mark === -1 ? raw : raw.slice(0, mark)
    let parsed: URLSearchParams | undefined
    const query = (): URLSearchParams =>
      (parsed ??= new URLSearchParams(mark === -1 ? '' : raw.slice(mark + 1)))
    const method = req.method ?? 'GET'
    const cors = corsHeaders(options.corsOrigins, req.headers.origin)
    const peer = req.socket.remoteAddress
    // Behind a trusted proxy: the client's address from its forwarding headers.
    const remoteAddress = clientAddress(options.trustProxy, peer, req.headers)
    if (method === 'OPTIONS') {
      // Preflight: browsers ask before a POST with JSON or an Authorization header.
      res.writeHead(204, { ...cors, ...preflightHeaders(cors) })
      res.end()
      return
    }
    let found: Route
    try {
      found = resolveRoute(method, path, features)
    } catch (error) {
      // Not an API route: a mounted part's, or a 404.
      if (!isSseError(error) || error.code !== ErrorCodes.NOT_FOUND || mounts.length === 0)
        throw error
      for (const [name, value] of Object.entries(cors)) res.setHeader(name, value)
      const request: MountRequest = {
        path,
        query,
        operator: (where) => access.operator({ headers: req.headers, remoteAddress, query }, where),
      }
      for (const mount of mounts) if (await mount.handle(req, res, request)) return
      throw error
    }
    const request: HubRequest = {
      method,
      path,
      headers: req.headers,
      remoteAddress,
      query,
    }
    const body = needsBody(found) ? await readBody(req, options.maxBodyBytes) : null
    const outcome = await pipeline.run(found, request, body)
    if (isAnswer(outcome)) {
      writeAnswer(res, outcome, cors)
      return
    }
    if (outcome.kind === 'poll') {
      poll(hub, req, res, outcome.params, outcome.timeoutMs, cors)
      return
    }
    for (const [name, value] of Object.entries(cors)) res.setHeader(name, value)
    if (!('stream' in req)) {
      // Nothing more is answered on a stream's connection: it leaves the send-timeout sweep (its
      // queue is bounded by maxQueuedBytes) and keeps only the flag that guards its bytes.
      const state = stateOf(req.socket)
      state.stream = true
      state.owed = []
      sockets.delete(req.socket)
    }
    // The params carry the client's address (pipeline.ts): any transport will do.
    if (options.gzip && acceptsGzip(req)) hub.attach(createGzipTransport(req, res), outcome.params)
    else hub.subscribe(req, res, outcome.params)
  }

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    context.onRequest(1)
    // HTTP/2's compat socket is a proxy: the connection guards are HTTP/1's.
    const state = 'stream' in req ? undefined : stateOf(req.socket)
    res.once('close', () => {
      context.onRequest(-1)
      if (state !== undefined) settle(req.socket, state, req)
    })
    if (state !== undefined) {
      state.owed.push(req)
      // A peer that pipelines more than this without reading is not a browser: close it.
      if (state.owed.length > options.maxPipelinedRequests) {
        req.socket.destroy()
        return
      }
    }
    if (
      req.httpVersionMajor === 1 &&
      req.httpVersionMinor === 1 &&
      req.headers.host === undefined
    ) {
      refuse(
        res,
        new SseError(ErrorCodes.BAD_REQUEST, 'HTTP/1.1 requests need a Host header; send one.'),
        {},
      )
      return
    }
    // node:http keeps at most maxHeaderCount + 1 header lines and drops the rest silently: a head
    // with more is refused, as the fast front refuses it, instead of being half read.
    if (req.rawHeaders.length / 2 > options.maxHeaderCount) {
      refuse(
        res,
        new SseError(
          ErrorCodes.HEADERS_TOO_LARGE,
          `A request may have at most ${options.maxHeaderCount} header lines; send fewer.`,
        ),
        {},
      )
      return
    }
    const run = (): Promise<void> =>
      route(req, res).catch((error: unknown) => {
        const cors = corsHeaders(options.corsOrigins, req.headers.origin)
        if (isSseError(error)) refuse(res, error, cors, lineOf(req))
        else writeAnswer(res, pipeline.fail(error), cors)
      })
    // Pipelined requests take effect in order, as on the fast front: a publish sent after a
    // subscribe on one connection reaches that stream. (A request's turn ends once its outcome is
    // known: an answer started, a stream attached; not when a stream ends.)
    if (state === undefined) {
      void run()
      return
    }
    const turn = state.turn === null ? run() : state.turn.then(run)
    state.turn = turn
    void turn.then(() => {
      if (state.turn === turn) state.turn = null
    })
  }

  const clientError = (error: NodeJS.ErrnoException, socket: Socket): void => {
    const state = socketStates.get(socket)
    if (error.code === 'ECONNRESET' || !socket.writable || state?.stream === true) {
      // Never write an error into an event stream: it would read as stream bytes.
      socket.destroy()
      return
    }
    const tooLarge = error.code === 'HPE_HEADER_OVERFLOW'
    const timeout = error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
    const sse = tooLarge
      ? new SseError(
          ErrorCodes.HEADERS_TOO_LARGE,
          `The URL and headers are larger than ${options.maxHeaderBytes} bytes; send fewer topics per URL or smaller cookies.`,
        )
      : timeout
        ? new SseError(ErrorCodes.REQUEST_TIMEOUT, 'The request took too long to arrive.')
        : new SseError(ErrorCodes.BAD_REQUEST, 'The request is not valid HTTP.')
    const body = errorBody(sse)
    const text = `HTTP/1.1 ${sse.status} ${REASONS[sse.status]}\r\ncontent-type: ${JSON_TYPE}\r\ncontent-length: ${Buffer.byteLength(body)}\r\ncache-control: no-store\r\nconnection: close\r\n\r\n${body}`
    // Answers still owed go first: the error is the last thing said on this connection.
    if (state !== undefined && waitsFor(state)) state.error = text
    else socket.end(text)
  }

  return {
    handle,
    clientError,
    close() {
      clearInterval(sweeper)
    },
  }
}
