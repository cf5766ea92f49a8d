/**
 * The `ssehub serve` flag table. A flag's default is never written here: it is read from the
 * defaults object of the layer that owns the option (the hub, the memory broker, the server, JWT,
 * the showcase, the Redis broker), so `--help` cannot drift from what the code does;
 * test/cli/defaults.test.ts ties the README and docs/security.md to it.
 */
import { DURABLE_BROKER_DEFAULTS, FSYNC_POLICIES } from '../broker/durable-options.js'
import { MEMORY_BROKER_DEFAULTS } from '../broker/memory.js'
import { REDIS_BROKER_DEFAULTS } from '../broker/redis.js'
import { HUB_DEFAULTS } from '../hub/hub-options.js'
import { JWT_DEFAULTS } from '../server/auth.js'
import { SERVER_DEFAULTS } from '../server/server-options.js'
import { SHOWCASE_DEFAULTS } from '../showcase/index.js'
import { LOG_FORMATS } from './log.js'

/** Where `ssehub serve` keeps history: on disk (the durable broker) or in memory. */
export type Store = 'durable' | 'memory'

/** The stores `--store` takes. */
export const STORES: readonly Store[] = ['durable', 'memory']

/** The defaults of what belongs to the CLI alone: where to listen, which broker, how to log. */
export const CLI_DEFAULTS = Object.freeze({
  port: 8080,
  host: '127.0.0.1',
  /**
   * One process: the library's semantics, and what a small machine or a container with one CPU
   * should run. `--workers auto` runs one per core (docs/performance.md).
   */
  workers: 1,
  /** No Redis URL: the store below. */
  redisUrl: null,
  /** The Redis broker's default node id, `<hostname>:<pid>`. */
  nodeId: null,
  logFormat: 'text',
  /** History on disk, so that a restart keeps it (the library's default stays the memory broker). */
  store: 'durable',
  /** The durable store's folder, relative to the working directory. */
  dataDir: './ssehub-data',
  /** No LLM upstream: with the demos on, the relay upstream `default` is a mock model. */
  llmUrl: null,
  llmKey: null,
  /** The `model` of `--llm-url`'s requests that name none. */
  llmModel: 'gpt-4o-mini',
} as const)

/**
 * The default of every key a flag sets, from the layer that owns it. The history options go to
 * the Redis broker with `--redis`: its history defaults are the memory broker's (a test checks).
 */
const flagDefaults = {
  ...CLI_DEFAULTS,
  redisPrefix: REDIS_BROKER_DEFAULTS.prefix,
  presenceTtlMs: REDIS_BROKER_DEFAULTS.presenceTtlMs,
  ...MEMORY_BROKER_DEFAULTS,
  fsync: DURABLE_BROKER_DEFAULTS.fsync,
  historyMaxBytes: DURABLE_BROKER_DEFAULTS.historyMaxBytes,
  ...HUB_DEFAULTS,
  ...SERVER_DEFAULTS,
  ...JWT_DEFAULTS,
  ...SHOWCASE_DEFAULTS,
}

/** How one flag is read. */
export type FlagKind =
  | 'int'
  | 'nullable-int'
  | 'string'
  | 'flag'
  | 'overflow'
  | 'origins'
  | 'file'
  | 'list'
  | 'choice'
  | 'upstreams'
  | 'workers'

/** One `ssehub serve` flag. */
export interface FlagSpec {
  /** The flag without `--`; a `no-` flag turns a default-on option off. */
  readonly flag: string
  readonly kind: FlagKind
  /** The option it sets (a server, hub, broker, JWT or showcase option, or one of the CLI's). */
  readonly key: Exclude<keyof typeof flagDefaults, 'mounts'>
  readonly help: string
  /**
   * What the option's `null` default means, when it is more than `none`/`off`: e.g. `publishBurst`
   * is computed from the rate.
   */
  readonly nullMeans?: string
  /** Its environment variable, when not `SSEHUB_` + the flag in upper snake case. */
  readonly env?: string
  /** The values a `choice` flag takes. */
  readonly choices?: readonly string[]
}

/**
 * Every `ssehub serve` flag, its env var (`SSEHUB_` + the flag in upper snake case) and the option
 * it maps onto. `--help` is generated from this table, so they cannot drift apart.
 */
export const serveSpecs: readonly FlagSpec[] = [
  {
    flag: 'port',
    kind: 'int',
    key: 'port',
    help: 'TCP port (0 picks a free one)',
  },
  { flag: 'host', kind: 'string', key: 'host', help: 'address to listen on' },
  {
    flag: 'workers',
    kind: 'workers',
    key: 'workers',
    help: "processes serving HTTP on the one port, one hub (ids, history, targets, limits are hub-wide): a number or 'auto' (one per core)",
  },
  {
    flag: 'redis',
    kind: 'string',
    key: 'redisUrl',
    env: 'SSEHUB_REDIS_URL',
    nullMeans: 'none (history per --store)',
    help: 'use the Redis broker at this URL (redis://host:port/db), or on a Redis Cluster (redis+cluster://host:port,host:port: its seed nodes), to run several nodes',
  },
  {
    flag: 'store',
    kind: 'choice',
    key: 'store',
    choices: STORES,
    help: "where history is kept: 'durable' (on disk under --data-dir: a restart keeps it) or 'memory' (a restart forgets it)",
  },
  {
    flag: 'data-dir',
    kind: 'string',
    key: 'dataDir',
    help: 'folder of the durable store (created when missing; one hub per folder)',
  },
  {
    flag: 'fsync',
    kind: 'choice',
    key: 'fsync',
    choices: FSYNC_POLICIES,
    help: "durable store: 'always' (a publish is answered once it is on disk: survives power loss) or 'never' (once the OS has it: survives kill -9, not an OS crash)",
  },
  {
    flag: 'redis-prefix',
    kind: 'string',
    key: 'redisPrefix',
    help: 'prefix of the Redis keys (one deployment per prefix); keep a hash tag ({...}): a Redis Cluster needs every key in one slot',
  },
  {
    flag: 'node-id',
    kind: 'string',
    key: 'nodeId',
    nullMeans: 'none (<hostname>:<pid>)',
    help: "this node's id in the cluster's presence (/clients, /stats); with --redis",
  },
  {
    flag: 'presence-ttl',
    kind: 'int',
    key: 'presenceTtlMs',
    help: "ms a node's presence (connections, online counts, stats) outlives it in Redis: a dead node vanishes from every answer within it; with --redis",
  },
  {
    flag: 'publish-key',
    kind: 'string',
    key: 'publishKey',
    help: 'key required as `Authorization: Bearer <key>` by POST /publish and other mutating endpoints',
  },
  {
    flag: 'jwt-secret',
    kind: 'string',
    key: 'jwtSecret',
    help: 'HS256 secret (at least 32 bytes) for JWT auth',
  },
  {
    flag: 'jwt-public-key',
    kind: 'file',
    key: 'jwtPublicKey',
    help: 'PEM file of the RS256/ES256 public key for JWT auth',
  },
  {
    flag: 'jwt-jwks-url',
    kind: 'string',
    key: 'jwtJwksUrl',
    help: 'JWKS URL of the RS256/ES256 keys for JWT auth',
  },
  {
    flag: 'token-cookie',
    kind: 'string',
    key: 'tokenCookie',
    help: 'cookie that may carry the token',
  },
  {
    flag: 'no-query-token',
    kind: 'flag',
    key: 'allowQueryToken',
    help: 'refuse tokens in the `token` query parameter (URLs get logged)',
  },
  {
    flag: 'private-topics',
    kind: 'list',
    key: 'privateTopics',
    help: "topic selectors that need a subscriber token, e.g. 'private/*,admin'",
  },
  {
    flag: 'max-connections-per-ip',
    kind: 'nullable-int',
    key: 'maxConnectionsPerIp',
    help: "open connections per client IP, then 429 ('off' for no limit; set it with --trust-proxy behind a proxy)",
  },
  {
    flag: 'trust-proxy',
    kind: 'list',
    key: 'trustProxy',
    help: "take the client IP from X-Forwarded-For/Forwarded for requests from these proxies: addresses/CIDRs ('loopback,10.0.0.0/8') or a hop count",
  },
  {
    flag: 'publish-rate',
    kind: 'nullable-int',
    key: 'publishRatePerSecond',
    help: "publishes per second per token subject, or per IP with --allow-anonymous-publish, then 429 ('off'); the publish key and the open loopback hub are never limited",
  },
  {
    flag: 'publish-burst',
    kind: 'int',
    key: 'publishBurst',
    nullMeans: '2 x rate',
    help: 'bucket size of the publish rate limit',
  },
  {
    flag: 'headers-timeout-ms',
    kind: 'int',
    key: 'headersTimeoutMs',
    help: 'time to receive request headers (slowloris guard)',
  },
  {
    flag: 'request-timeout-ms',
    kind: 'int',
    key: 'requestTimeoutMs',
    help: 'time to receive a whole request',
  },
  {
    flag: 'max-header-bytes',
    kind: 'int',
    key: 'maxHeaderBytes',
    help: 'largest request line + headers (431 above)',
  },
  {
    flag: 'max-header-count',
    kind: 'int',
    key: 'maxHeaderCount',
    help: 'most header lines in a request (431 above)',
  },
  {
    flag: 'send-timeout-ms',
    kind: 'int',
    key: 'sendTimeoutMs',
    help: 'time a connection may leave answers unread before it is closed (streams: --max-queued-bytes)',
  },
  {
    flag: 'max-pipelined-requests',
    kind: 'int',
    key: 'maxPipelinedRequests',
    help: 'requests one connection may have pipelined and unanswered before it is closed',
  },
  {
    flag: 'allow-anonymous-publish',
    kind: 'flag',
    key: 'allowAnonymousPublish',
    help: 'allow a non-loopback --host without a publish key',
  },
  {
    flag: 'cors-origins',
    kind: 'origins',
    key: 'corsOrigins',
    help: "allowed origins: '*' or a comma-separated list",
  },
  {
    flag: 'max-body-bytes',
    kind: 'int',
    key: 'maxBodyBytes',
    help: 'largest publish body (413 above)',
  },
  {
    flag: 'max-batch-events',
    kind: 'int',
    key: 'maxBatchEvents',
    help: 'most events in one POST /publish/batch',
  },
  {
    flag: 'heartbeat-ms',
    kind: 'nullable-int',
    key: 'heartbeatMs',
    help: "comment on idle streams every N ms ('off' to disable)",
  },
  {
    flag: 'retry-ms',
    kind: 'nullable-int',
    key: 'retryMs',
    help: "`retry:` sent to clients on connect ('off' for none)",
  },
  {
    flag: 'max-connection-age-ms',
    kind: 'nullable-int',
    key: 'maxConnectionAgeMs',
    help: 'close streams older than N ms (clients resume)',
  },
  {
    flag: 'max-queued-bytes',
    kind: 'int',
    key: 'maxQueuedBytes',
    help: 'unsent bytes per connection before it is closed as a slow consumer',
  },
  {
    flag: 'max-pending-events',
    kind: 'int',
    key: 'maxPendingEvents',
    help: 'live events queued per connection while its history replays',
  },
  {
    flag: 'max-connections',
    kind: 'nullable-int',
    key: 'maxConnections',
    help: "open connections in all ('off' for no limit)",
  },
  {
    flag: 'max-connections-per-client',
    kind: 'nullable-int',
    key: 'maxConnectionsPerClient',
    help: "open connections per client id ('off' for no limit)",
  },
  {
    flag: 'max-topics-per-connection',
    kind: 'int',
    key: 'maxTopicsPerConnection',
    help: 'topics one connection may follow',
  },
  {
    flag: 'max-topics-per-publish',
    kind: 'int',
    key: 'maxTopicsPerPublish',
    help: 'topics one publish may target',
  },
  {
    flag: 'overflow',
    kind: 'overflow',
    key: 'overflow',
    help: "at a connection limit: 'reject' (503) or 'evict' (least recently active)",
  },
  {
    flag: 'history-max-events',
    kind: 'int',
    key: 'historyMaxEvents',
    help: 'events kept for Last-Event-ID replay',
  },
  {
    flag: 'history-max-age-ms',
    kind: 'nullable-int',
    key: 'historyMaxAgeMs',
    help: "how long events stay in the history ('off': count bound only)",
  },
  {
    flag: 'history-max-bytes',
    kind: 'nullable-int',
    key: 'historyMaxBytes',
    help: "durable store: bytes of events kept on disk ('off': the other bounds only)",
  },
  {
    flag: 'ended-topic-ttl-ms',
    kind: 'int',
    key: 'endedTopicTtlMs',
    help: 'how long a finished topic is remembered (final event or 204 on reconnect)',
  },
  {
    flag: 'max-ended-topics',
    kind: 'int',
    key: 'maxEndedTopics',
    help: 'finished topics remembered at most',
  },
  {
    flag: 'idempotency-window-ms',
    kind: 'int',
    key: 'idempotencyWindowMs',
    help: 'how long an Idempotency-Key is remembered: a retried publish within it returns the first id and publishes nothing',
  },
  {
    flag: 'max-idempotency-keys',
    kind: 'int',
    key: 'maxIdempotencyKeys',
    help: 'idempotency keys remembered at most by the memory broker, oldest forgotten first (Redis keeps each for the window)',
  },
  {
    flag: 'max-topic-length',
    kind: 'int',
    key: 'maxTopicLength',
    help: 'longest topic name',
  },
  {
    flag: 'max-client-id-length',
    kind: 'int',
    key: 'maxClientIdLength',
    help: 'longest client id',
  },
  {
    flag: 'max-event-name-length',
    kind: 'int',
    key: 'maxEventNameLength',
    help: 'longest event name',
  },
  {
    flag: 'shutdown-timeout-ms',
    kind: 'int',
    key: 'shutdownTimeoutMs',
    help: 'graceful shutdown budget on SIGINT/SIGTERM',
  },
  {
    flag: 'no-dashboard',
    kind: 'flag',
    key: 'dashboard',
    help: 'do not serve the dashboard at /',
  },
  {
    flag: 'tls-cert',
    kind: 'file',
    key: 'tlsCert',
    nullMeans: 'none (plain HTTP/1.1)',
    help: 'PEM certificate file: with --tls-key, serve HTTP/2 over TLS with HTTP/1.1 fallback',
  },
  {
    flag: 'tls-key',
    kind: 'file',
    key: 'tlsKey',
    help: 'PEM private key file of --tls-cert',
  },
  {
    flag: 'gzip',
    kind: 'flag',
    key: 'gzip',
    help: 'gzip event streams (flushed per event) for clients that send Accept-Encoding: gzip',
  },
  {
    flag: 'no-fast-path',
    kind: 'flag',
    key: 'fastPath',
    help: 'answer every request with node:http, also plain /publish and /events (slower, more memory)',
  },
  {
    flag: 'no-demos',
    kind: 'flag',
    key: 'demos',
    help: 'do not serve the demos at /demo/chat, /demo/progress, /demo/ticker',
  },
  {
    flag: 'relay-upstream',
    kind: 'upstreams',
    key: 'relayUpstreams',
    help: "an upstream POST /relays may name: NAME=URL[,key-env=VAR][,model=MODEL] (OpenAI-compatible; the API key is read from $VAR); repeat it, or separate several with ';'",
  },
  {
    flag: 'llm-url',
    kind: 'string',
    key: 'llmUrl',
    nullMeans: 'none (a mock model while the demos are on)',
    help: "the relay upstream 'default' (the chat demo's): an OpenAI-compatible base URL or .../v1/chat/completions",
  },
  {
    flag: 'llm-key',
    kind: 'string',
    key: 'llmKey',
    help: 'API key sent to --llm-url as `Authorization: Bearer <key>` (prefer key-env= of --relay-upstream: a command line is visible to ps)',
  },
  {
    flag: 'llm-model',
    kind: 'string',
    key: 'llmModel',
    help: 'model asked of --llm-url when a request names none',
  },
  {
    flag: 'relay-timeout-ms',
    kind: 'int',
    key: 'relayTimeoutMs',
    help: 'a relayed generation ends with error (reason timeout) after this long',
  },
  {
    flag: 'relay-max-tokens',
    kind: 'int',
    key: 'relayMaxTokens',
    help: 'most tokens of one relayed generation (error, reason max-tokens, past it)',
  },
  {
    flag: 'max-relays',
    kind: 'int',
    key: 'maxRelays',
    help: 'generations one node relays at once; past it POST /relays answers 503',
  },
  {
    flag: 'no-metrics',
    kind: 'flag',
    key: 'metrics',
    help: 'do not serve /metrics',
  },
  {
    flag: 'log-format',
    kind: 'choice',
    choices: LOG_FORMATS,
    key: 'logFormat',
    help: "log lines on stdout as 'text' or 'json' (one object a line): start, broker down/back, drops, auth refusals (rate-limited), shutdown",
  },
]

/** The env var of a flag: `--max-body-bytes` -> `SSEHUB_MAX_BODY_BYTES`. */
export function envName(flag: string): string {
  return 'SSEHUB_' + flag.toUpperCase().replaceAll('-', '_')
}

/** The env var of a spec: its `env`, else {@link envName} of its flag (`--redis`: `SSEHUB_REDIS_URL`). */
export function envOf(spec: FlagSpec): string {
  return spec.env ?? envName(spec.flag)
}

/**
 * `SSEHUB_*` variables that are not `serve`'s but may be set where it runs, so `serve` does not
 * refuse them as typos: the other commands' and the test and bench tooling's.
 */
export const OTHER_ENV_VARS: ReadonlySet<string> = new Set([
  'SSEHUB_URL', // publish, listen: the hub's URL
  'SSEHUB_BENCH_OPTIONS', // bench: the options the CLI hands its child process
  'SSEHUB_BENCH_COMMAND', // bench scripts
  'SSEHUB_CHROMIUM', // tests: the browser to drive
  'SSEHUB_FUZZ_MS', // tests: fuzz duration
  'SSEHUB_SOAK_MS', // tests: soak duration
  'SSEHUB_TEST_FRONT', // tests: which HTTP front the suites use
  'SSEHUB_SKIP_TEST_DEPS', // tests: skip installing nginx, Redis, Chromium
  'SSEHUB_ROLLING_REPORT', // tests: print the rolling restart's reconnect histogram
  'SSEHUB_PROXY_STREAMS', // tests: streams the proxy load test opens
])

/**
 * The default of a flag as `--help` shows it, formatted from the owning layer's value: `null` is
 * `off` for a limit or timer and `none` otherwise (or the spec's `nullMeans`), a `--no-*` flag is
 * `false` while its option defaults to `true`, a list is comma-separated.
 */
export function shownDefault(spec: FlagSpec): string {
  const value: unknown = flagDefaults[spec.key]
  if (value === null) return spec.nullMeans ?? (spec.kind === 'nullable-int' ? 'off' : 'none')
  if (typeof value === 'boolean') return String(spec.flag.startsWith('no-') ? !value : value)
  if (Array.isArray(value)) return value.length === 0 ? 'none' : value.join(',')
  if (typeof value === 'object' && value !== null && Object.keys(value).length === 0) return 'none'
  if (typeof value === 'number' || typeof value === 'string') return String(value)
  throw new TypeError(`--${spec.flag}: no text for the default of \`${spec.key}\``)
}

/** `ssehub serve --help`. */
export function serveHelp(): string {
  const rows = serveSpecs.map((spec) => {
    const left = `  --${spec.flag}${spec.kind === 'flag' ? '' : ' <value>'}`
    return `${left.padEnd(40)} ${spec.help} [default: ${shownDefault(spec)}; env ${envOf(spec)}]`
  })
  return [
    'Usage: ssehub [serve] [options]',
    '',
    'Runs the hub server: GET /events, POST /publish, DELETE /clients/{id}, /stats, /metrics...',
    'Every option is also read from its environment variable; a flag wins over the variable.',
    '',
    'Options:',
    ...rows,
    '  --help                                   show this help',
    '',
  ].join('\n')
}
