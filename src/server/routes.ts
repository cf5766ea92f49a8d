/**
 * The route table of the hub server's API: which path and method reach which handler. Both fronts
 * resolve routes here; the fast front additionally asks {@link fastTakes}, the one place that
 * decides which requests it answers itself.
 */
import type { IncomingHttpHeaders } from 'node:http'
import { ErrorCodes, SseError } from '../errors.js'
import { acceptsGzip } from './gzip.js'

/** The API's routes, by name. */
export type RouteName =
  | 'publish'
  | 'batch'
  | 'events'
  | 'poll'
  | 'close-client'
  | 'revoke-client'
  | 'clients'
  | 'topic'
  | 'stats'
  | 'healthz'
  | 'metrics'
  | 'relay-start'
  | 'relay-abort'

/** A resolved route: its name and its path parameter (a client id, a topic, a relay id), decoded. */
export interface Route {
  readonly name: RouteName
  readonly param?: string
}

interface Entry {
  readonly name: RouteName
  readonly methods: readonly string[]
  /** Exact path, or a prefix (ending in `/`) followed by one parameter, with an optional suffix. */
  readonly path: string
  readonly suffix?: string
}

// Order matters where paths overlap: `/clients/{id}/revoke` before `/clients/{id}`.
const TABLE: readonly Entry[] = [
  { name: 'events', methods: ['GET'], path: '/events' },
  { name: 'poll', methods: ['GET'], path: '/poll' },
  { name: 'publish', methods: ['POST'], path: '/publish' },
  { name: 'batch', methods: ['POST'], path: '/publish/batch' },
  { name: 'revoke-client', methods: ['POST'], path: '/clients/', suffix: '/revoke' },
  { name: 'close-client', methods: ['DELETE'], path: '/clients/' },
  { name: 'clients', methods: ['GET', 'HEAD'], path: '/clients' },
  { name: 'topic', methods: ['GET', 'HEAD'], path: '/topics/' },
  { name: 'stats', methods: ['GET', 'HEAD'], path: '/stats' },
  { name: 'healthz', methods: ['GET', 'HEAD'], path: '/healthz' },
  { name: 'metrics', methods: ['GET', 'HEAD'], path: '/metrics' },
  { name: 'relay-start', methods: ['POST'], path: '/relays' },
  { name: 'relay-abort', methods: ['POST'], path: '/relays/', suffix: '/abort' },
]

const PARAM_NAMES: Partial<Record<RouteName, string>> = {
  topic: 'topic',
  'relay-abort': 'relay id',
}

// Routes without a path parameter, by path, each with its one shared Route object (the hot routes,
// publish and events, cost one map lookup); routes with one are matched by prefix.
const EXACT = new Map<string, { readonly entry: Entry; readonly route: Route }>(
  TABLE.filter((entry) => !entry.path.endsWith('/')).map((entry) => [
    entry.path,
    { entry, route: Object.freeze({ name: entry.name }) },
  ]),
)
const WITH_PARAM = TABLE.filter((entry) => entry.path.endsWith('/'))

/** Routes that exist only when their feature is on. */
export interface RouteFeatures {
  readonly metrics: boolean
}

function notFound(method: string, path: string): SseError {
  return new SseError(
    ErrorCodes.NOT_FOUND,
    `No route for ${method} ${path}; see the API table in the README.`,
  )
}

function decode(raw: string, what: string): string {
  try {
    return decodeURIComponent(raw)
  } catch {
    throw new SseError(
      ErrorCodes.BAD_REQUEST,
      `The ${what} in the path is not valid percent-encoding; encode it with encodeURIComponent.`,
    )
  }
}

/**
 * Resolves `method` and `path` (as sent, without normalisation) to a route.
 * @throws {SseError} `ERR_SSE_NOT_FOUND` (404) or `ERR_SSE_METHOD_NOT_ALLOWED` (405, the error's
 * `allow` in {@link allowOf}), `ERR_SSE_BAD_REQUEST` for a bad percent-encoding.
 */
export function resolveRoute(method: string, path: string, features: RouteFeatures): Route {
  const exact = EXACT.get(path)
  if (exact !== undefined) return admitted(exact.entry, exact.route, method, path, features)
  for (const entry of WITH_PARAM) {
    if (!path.startsWith(entry.path) || path.length === entry.path.length) continue
    let param = path.slice(entry.path.length)
    if (entry.suffix !== undefined) {
      if (!param.endsWith(entry.suffix) || param.length === entry.suffix.length) continue
      param = param.slice(0, -entry.suffix.length)
    }
    admitted(entry, null, method, path, features)
    return {
      name: entry.name,
      param: decode(param, PARAM_NAMES[entry.name] ?? 'client id'),
    }
  }
  throw notFound(method, path)
}

/** `route` when `entry` exists (its feature is on) and takes `method`; else 404 or 405. */
function admitted<R extends Route | null>(
  entry: Entry,
  route: R,
  method: string,
  path: string,
  features: RouteFeatures,
): R {
  if (entry.name === 'metrics' && !features.metrics) throw notFound(method, path)
  if (!entry.methods.includes(method)) {
    const allow = entry.methods.join(', ')
    throw Object.assign(new SseError(ErrorCodes.METHOD_NOT_ALLOWED, `Use ${allow} on this path.`), {
      allow,
    })
  }
  return route
}

/** The `Allow` header of a 405 raised by {@link resolveRoute}. */
export function allowOf(error: SseError): string | undefined {
  const allow = (error as SseError & { allow?: unknown }).allow
  return typeof allow === 'string' ? allow : undefined
}

/** What the fast front may decide on: a parsed head. */
export interface FastHead {
  readonly route: Route
  readonly headers: IncomingHttpHeaders
  /** More bytes came after the request (pipelined). */
  readonly followed: boolean
}

/**
 * The one place that decides which requests the socket-level fast front answers: publishes,
 * batches and plain streams. The rest reaches node:http whole: CORS requests (their answers carry
 * headers the socket transport does not write), gzip streams (the gzip transport wraps a
 * ServerResponse), a stream request followed by more bytes (the socket becomes the stream), and
 * every other route. (Requests the fast parser cannot parse exactly never get this far.)
 */
export function fastTakes(head: FastHead, options: { readonly gzip: boolean }): boolean {
  const { route, headers } = head
  if (headers.origin !== undefined) return false
  if (route.name === 'publish' || route.name === 'batch') return true
  if (route.name !== 'events' || head.followed) return false
  return !(options.gzip && acceptsGzip(head))
}
