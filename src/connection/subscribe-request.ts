/**
 * What a request to open an event stream asks for, read from HTTP: the one reader of the stream
 * query (`?topic=a&topic=b&clientId=u&lastEventId=...`) and of the `Last-Event-ID` precedence,
 * shared by the hub's `subscribe`/`subscribeWeb` and every front of the hub server.
 */
import type { NodeRequest } from './node-http.js'

/** What a stream request asks for, before the hub checks it. */
export interface StreamRequest {
  /** Topics to follow (the repeated `topic` parameter). */
  readonly topics: readonly string[]
  /** The client id (`clientId`). */
  readonly clientId?: string
  /** Resume after this event id (`Last-Event-ID`, or the `lastEventId` parameter). */
  readonly lastEventId?: string
  /**
   * Where a new subscription starts (`from`): `start` (every event the history holds), `newest`
   * (the latest event of each topic) or a count N (the last N); then live. A `Last-Event-ID`
   * wins over it. Checked by the hub.
   */
  readonly from?: string | number
}

/**
 * Any stream request: a {@link StreamRequest}, or parameters that extend it with fields of their
 * own (the hub's `SubscribeParams` add a token's expiry).
 */
export type StreamRequestLike = Partial<StreamRequest>

/**
 * The query of a request target (`/events?topic=a`, as node:http's `req.url`) or of an absolute
 * URL (a fetch `Request`'s `url`).
 */
export function queryOf(url: string | undefined): URLSearchParams {
  // The base only makes a request target parseable; its host is never used.
  return new URL(url ?? '/', 'http://x').searchParams
}

/**
 * Reads a stream request from its query: every `topic`, `clientId`, `from`, and `lastEventId`
 * (or `last_event_id`), for clients that cannot set headers on reconnect or that start from a
 * remembered id. The `Last-Event-ID` header still wins: see {@link lastEventIdOf}.
 */
export function subscribeQuery(query: URLSearchParams): StreamRequest {
  const clientId = query.get('clientId') ?? undefined
  const lastEventId = query.get('lastEventId') ?? query.get('last_event_id') ?? undefined
  const from = query.get('from') ?? undefined
  return {
    topics: query.getAll('topic'),
    ...(clientId === undefined ? {} : { clientId }),
    ...(lastEventId === undefined ? {} : { lastEventId }),
    ...(from === undefined ? {} : { from }),
  }
}

/**
 * The id to resume after: the `Last-Event-ID` header when it is a non-empty string, else
 * `fallback` (the query's id, or none).
 *
 * The header wins because an EventSource sets it on every reconnect to the last id it received,
 * while the query keeps the id the page started with. An empty header counts as absent: an
 * EventSource never sends one (the spec sends the header only for a non-empty last event id),
 * so it comes from a hand-written client, and resuming after "" would only earn a reset; the
 * long-poll route always treated it so. A repeated header (an array in node:http) is ignored
 * likewise, as it was: there is no telling which one the client meant.
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#the-last-event-id-header
 */
export function lastEventIdOf(
  header: string | readonly string[] | null | undefined,
  fallback: string | undefined,
): string | undefined {
  return typeof header === 'string' && header !== '' ? header : fallback
}

/**
 * `request` with its `lastEventId` set by {@link lastEventIdOf}: the same object when the header
 * does not change it (a stream request's parameters may carry more fields, e.g. a token's expiry).
 */
export function withLastEventId<T extends StreamRequestLike>(
  request: T,
  header: string | readonly string[] | null | undefined,
): T {
  const lastEventId = lastEventIdOf(header, request.lastEventId)
  return lastEventId === request.lastEventId ? request : { ...request, lastEventId }
}

/**
 * The stream request of a node:http (or http2 compat) request: `params` when given, else its
 * query ({@link subscribeQuery}), with the `Last-Event-ID` header applied ({@link withLastEventId}).
 */
export function nodeStreamRequest<T extends StreamRequestLike>(
  req: NodeRequest,
  params?: T,
): T | StreamRequest {
  const request = params ?? subscribeQuery(queryOf(req.url))
  return withLastEventId<T | StreamRequest>(request, req.headers['last-event-id'])
}

/** {@link nodeStreamRequest} for a fetch-style `Request`. */
export function fetchStreamRequest<T extends StreamRequestLike>(
  request: Request,
  params?: T,
): T | StreamRequest {
  const resolved = params ?? subscribeQuery(queryOf(request.url))
  return withLastEventId<T | StreamRequest>(resolved, request.headers.get('last-event-id'))
}
