/**
 * The hub server's options: their one home. Each default is written once, in
 * {@link SERVER_DEFAULTS}; `@default` in the TSDoc, the CLI's flag table and the README are checked
 * against it by a test. {@link resolveServerOptions} validates every option up front, with a
 * message that names it, so that a bad value fails at construction, not at the first request.
 */
import type { ErrorCode } from '../errors.js'
import type { HubOptions } from '../hub/hub-options.js'
import type { Hub } from '../hub/hub.js'
import { booleanOption, positiveInteger, positiveIntegerOption, textOption } from '../options.js'
import { RELAY_DEFAULTS, type RelayUpstream } from '../relay/relays.js'
import type { JwtOptions } from './auth.js'
import { isOrigin } from './cors.js'
import { resolveTrustProxy, type ResolvedTrustProxy, type TrustProxy } from './client-address.js'
import type { HubServerMountFactory } from './mount.js'

/** Options of `createHubServer`: the hub's options plus the HTTP API's. */
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
   * node:http. Plain HTTP only (not with TLS). Both fronts run the same handlers.
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
  /**
   * Optional parts mounted beside the API, asked for the requests its routes do not take: e.g.
   * the dashboard and demos, `createShowcase()` from `ssehub/showcase` (which `ssehub serve`
   * mounts). @default []
   */
  readonly mounts?: readonly HubServerMountFactory[]
  /** Serve `/metrics` in Prometheus text format. @default true */
  readonly metrics?: boolean
  /** How long a graceful shutdown may take before remaining sockets are cut, in ms. @default 5000 */
  readonly shutdownTimeoutMs?: number
  /**
   * Publishes per second per publisher (token subject, or IP for anonymous publishers when
   * `allowAnonymousPublish` is set; the publish key and an open loopback hub are exempt), a token
   * bucket; past it `429` with `Retry-After`. `null` turns it off. @default 1000
   */
  readonly publishRatePerSecond?: number | null
  /** Bucket size of the publish rate limit; `null`: twice the rate. @default null */
  readonly publishBurst?: number | null
  /** Time to receive a request's headers (slowloris guard), in ms. @default 10000 */
  readonly headersTimeoutMs?: number
  /** Time to receive a whole request (body included), in ms. @default 30000 */
  readonly requestTimeoutMs?: number
  /**
   * Time a connection may keep answers unread (a peer that pipelines requests and never reads),
   * in ms; past it the connection is closed. Event streams are bounded by `maxQueuedBytes`
   * instead. @default 10000
   */
  readonly sendTimeoutMs?: number
  /**
   * Requests a connection may have pipelined and not yet answered; past it the connection is
   * closed (browsers never pipeline; this bounds what one connection holds). @default 32
   */
  readonly maxPipelinedRequests?: number
  /** Largest request line + headers, in bytes; larger gets `431`. @default 16384 */
  readonly maxHeaderBytes?: number
  /** Most header lines in a request; more gets `431` on every front. @default 100 */
  readonly maxHeaderCount?: number
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
  /**
   * The proxies whose `X-Forwarded-For` / `Forwarded` headers name the client: a list of
   * addresses and CIDRs (IPv4 or IPv6; `'loopback'` for 127.0.0.0/8 and ::1), or a hop count
   * (a positive integer, or one numeric entry as `--trust-proxy 1` gives it). For requests from
   * those peers only, the client address (per-IP limit, `/clients`, the anonymous publish rate
   * limit) is the rightmost untrusted address of the header; a malformed
   * header keeps the peer's address. `null`: every request is its peer's. See
   * docs/deployment.md. @default null
   */
  readonly trustProxy?: TrustProxy
  /**
   * Called for each request refused with `401` or `403` (no or a bad key or token, a token without
   * the rights asked for), on every front and route, the mounted parts' included: the seam for an
   * access log or intrusion detection (`ssehub serve` logs them, rate-limited). It runs on the
   * request path: keep it cheap. `null`: nobody is told. @default null
   */
  readonly onAuthRefused?: ((refusal: AuthRefusal) => void) | null
  /**
   * The upstreams `POST /relays` may name, by name: OpenAI-compatible chat completion endpoints
   * (`{ url, apiKey, model }`) or sources in code (`{ source(body, signal) }`). Clients name an
   * upstream, never a URL. See docs/relay.md. @default {}
   */
  readonly relayUpstreams?: Readonly<Record<string, RelayUpstream>>
  /** A generation ends with `error` (reason `timeout`) after this long, in ms. @default 120000 */
  readonly relayTimeoutMs?: number
  /** Most tokens of one generation; past it, `error` (reason `max-tokens`). @default 100000 */
  readonly relayMaxTokens?: number
  /** Generations one node runs at once; past it `POST /relays` answers 503. @default 100 */
  readonly maxRelays?: number
  /**
   * Where `/metrics` comes from when this server is one of several processes of one hub
   * (`ssehub serve --workers`): resolves with the Prometheus text of the whole hub, which the
   * process that owns the hub aggregates. `null`: this server's own metrics. @default null
   */
  readonly metricsSource?: (() => Promise<string>) | null
}

/** A request refused for want of credentials (`401`) or rights (`403`). */
export interface AuthRefusal {
  /** `401` or `403`. */
  readonly status: number
  /** `ERR_SSE_UNAUTHORIZED` or `ERR_SSE_FORBIDDEN`. */
  readonly code: ErrorCode
  /** What the client was told. */
  readonly message: string
  /** The request's method. */
  readonly method: string
  /** The request's path, without the query (a token may travel there). */
  readonly path: string
  /** The client's address (a trusted proxy's forwarded one: see `trustProxy`). */
  readonly remoteAddress: string | undefined
}

/** The server-level options (not the hub's nor JWT's), as {@link resolveServerOptions} gives them. */
export interface ResolvedServerOptions {
  readonly publishKey: string | null
  readonly mounts: readonly HubServerMountFactory[]
  readonly fastPath: boolean
  readonly allowAnonymousPublish: boolean
  readonly corsOrigins: '*' | readonly string[] | null
  readonly maxBodyBytes: number
  readonly maxBatchEvents: number
  readonly metrics: boolean
  readonly shutdownTimeoutMs: number
  readonly publishRatePerSecond: number | null
  /** Resolved: twice the rate when not given (`null` only when the rate limit is off). */
  readonly publishBurst: number | null
  readonly headersTimeoutMs: number
  readonly requestTimeoutMs: number
  readonly sendTimeoutMs: number
  readonly maxPipelinedRequests: number
  readonly maxHeaderBytes: number
  readonly maxHeaderCount: number
  readonly tlsCert: string | Buffer | null
  readonly tlsKey: string | Buffer | null
  readonly gzip: boolean
  readonly trustProxy: ResolvedTrustProxy
  readonly onAuthRefused: ((refusal: AuthRefusal) => void) | null
  readonly relayUpstreams: Readonly<Record<string, RelayUpstream>>
  readonly relayTimeoutMs: number
  readonly relayMaxTokens: number
  readonly maxRelays: number
  readonly metricsSource: (() => Promise<string>) | null
}

/** Every default of the server-level options, written once. */
export const SERVER_DEFAULTS: ResolvedServerOptions = Object.freeze({
  publishKey: null,
  mounts: [],
  fastPath: true,
  allowAnonymousPublish: false,
  corsOrigins: null,
  maxBodyBytes: 1_048_576,
  maxBatchEvents: 1_000,
  metrics: true,
  shutdownTimeoutMs: 5_000,
  publishRatePerSecond: 1_000,
  publishBurst: null,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  sendTimeoutMs: 10_000,
  maxPipelinedRequests: 32,
  maxHeaderBytes: 16_384,
  maxHeaderCount: 100,
  tlsCert: null,
  tlsKey: null,
  gzip: false,
  trustProxy: null,
  onAuthRefused: null,
  relayUpstreams: {},
  relayTimeoutMs: RELAY_DEFAULTS.timeoutMs,
  relayMaxTokens: RELAY_DEFAULTS.maxTokens,
  maxRelays: RELAY_DEFAULTS.maxRunning,
  metricsSource: null,
})

function mountsOf(value: unknown): readonly HubServerMountFactory[] {
  if (Array.isArray(value) && value.every((mount) => typeof mount === 'function'))
    return value as readonly HubServerMountFactory[]
  throw new TypeError(
    'Expected `mounts` to be an array of mount factories, e.g. [createShowcase()]',
  )
}

function callbackOption<T>(name: string, value: T | null): T | null {
  if (value === null || typeof value === 'function') return value
  throw new TypeError(`Expected \`${name}\` to be a function or null`)
}

function pem(name: string, value: unknown): string | Buffer | null {
  if (value === null || typeof value === 'string' || Buffer.isBuffer(value)) return value
  throw new TypeError(`Expected \`${name}\` to be PEM text, a Buffer or null`)
}

function origins(value: unknown): '*' | readonly string[] | null {
  if (value === null || value === '*') return value
  if (Array.isArray(value) && value.every((origin) => typeof origin === 'string')) {
    for (const origin of value) {
      if (!isOrigin(origin))
        throw new TypeError(
          `Expected each of \`corsOrigins\` to be an origin like https://app.example.com, got ${JSON.stringify(origin)}`,
        )
    }
    return value
  }
  throw new TypeError(
    "Expected `corsOrigins` to be '*', an array of origins (https://app.example.com) or null",
  )
}

/**
 * Resolves and validates the server-level options, every one of them, with messages that name
 * the option. The hub's options are validated by the hub, JWT's by the authenticator.
 * @throws {TypeError | RangeError} on the first bad option.
 */
export function resolveServerOptions(options: HubServerOptions): ResolvedServerOptions {
  const d = SERVER_DEFAULTS
  const rate = positiveIntegerOption(
    'publishRatePerSecond',
    options.publishRatePerSecond === undefined
      ? d.publishRatePerSecond
      : options.publishRatePerSecond,
    true,
  )
  const burst = positiveIntegerOption('publishBurst', options.publishBurst ?? null, true)
  const tlsCert = pem('tlsCert', options.tlsCert ?? d.tlsCert)
  const tlsKey = pem('tlsKey', options.tlsKey ?? d.tlsKey)
  if ((tlsCert === null) !== (tlsKey === null))
    throw new TypeError('Expected both `tlsCert` and `tlsKey` (PEM), or neither.')
  return {
    publishKey: textOption('publishKey', options.publishKey ?? d.publishKey, true),
    mounts: mountsOf(options.mounts ?? d.mounts),
    fastPath: booleanOption('fastPath', options.fastPath ?? d.fastPath),
    allowAnonymousPublish: booleanOption(
      'allowAnonymousPublish',
      options.allowAnonymousPublish ?? d.allowAnonymousPublish,
    ),
    corsOrigins: origins(options.corsOrigins ?? d.corsOrigins),
    maxBodyBytes: positiveInteger('maxBodyBytes', options.maxBodyBytes ?? d.maxBodyBytes),
    maxBatchEvents: positiveInteger('maxBatchEvents', options.maxBatchEvents ?? d.maxBatchEvents),
    metrics: booleanOption('metrics', options.metrics ?? d.metrics),
    shutdownTimeoutMs: positiveInteger(
      'shutdownTimeoutMs',
      options.shutdownTimeoutMs ?? d.shutdownTimeoutMs,
    ),
    publishRatePerSecond: rate,
    publishBurst: rate === null ? null : (burst ?? 2 * rate),
    headersTimeoutMs: positiveInteger(
      'headersTimeoutMs',
      options.headersTimeoutMs ?? d.headersTimeoutMs,
    ),
    requestTimeoutMs: positiveInteger(
      'requestTimeoutMs',
      options.requestTimeoutMs ?? d.requestTimeoutMs,
    ),
    sendTimeoutMs: positiveInteger('sendTimeoutMs', options.sendTimeoutMs ?? d.sendTimeoutMs),
    maxPipelinedRequests: positiveInteger(
      'maxPipelinedRequests',
      options.maxPipelinedRequests ?? d.maxPipelinedRequests,
    ),
    maxHeaderBytes: positiveInteger('maxHeaderBytes', options.maxHeaderBytes ?? d.maxHeaderBytes),
    maxHeaderCount: positiveInteger('maxHeaderCount', options.maxHeaderCount ?? d.maxHeaderCount),
    tlsCert,
    tlsKey,
    gzip: booleanOption('gzip', options.gzip ?? d.gzip),
    trustProxy:
      options.trustProxy === undefined ? d.trustProxy : resolveTrustProxy(options.trustProxy),
    onAuthRefused: callbackOption('onAuthRefused', options.onAuthRefused ?? d.onAuthRefused),
    // Each upstream is checked by the relays (createHubServer builds them at once).
    relayUpstreams: upstreamsOf(options.relayUpstreams ?? d.relayUpstreams),
    relayTimeoutMs: positiveInteger('relayTimeoutMs', options.relayTimeoutMs ?? d.relayTimeoutMs),
    relayMaxTokens: positiveInteger('relayMaxTokens', options.relayMaxTokens ?? d.relayMaxTokens),
    maxRelays: positiveInteger('maxRelays', options.maxRelays ?? d.maxRelays),
    metricsSource: callbackOption('metricsSource', options.metricsSource ?? d.metricsSource),
  }
}

function upstreamsOf(value: unknown): Readonly<Record<string, RelayUpstream>> {
  if (typeof value === 'object' && value !== null && !Array.isArray(value))
    return value as Readonly<Record<string, RelayUpstream>>
  throw new TypeError(
    'Expected `relayUpstreams` to be an object of upstreams by name, e.g. { default: { url: "http://127.0.0.1:8000/v1" } }',
  )
}
