import { readFileSync } from 'node:fs'
import type { HubServerOptions } from '../server/server.js'
import { UsageError } from './io.js'

/** How one flag is read. */
type Kind = 'int' | 'nullable-int' | 'string' | 'flag' | 'overflow' | 'origins' | 'file' | 'list'

interface Spec {
  readonly flag: string
  readonly kind: Kind
  readonly key: keyof HubServerOptions | 'port' | 'host' | 'redisUrl' | 'redisPrefix'
  readonly help: string
  readonly default: string
}

/**
 * Every `ssehub serve` flag, its env var (`SSEHUB_` + the flag in upper snake case) and the server
 * option it maps onto. `--help` is generated from this table, so they cannot drift apart.
 */
export const serveSpecs: readonly Spec[] = [
  {
    flag: 'port',
    kind: 'int',
    key: 'port',
    default: '8080',
    help: 'TCP port (0 picks a free one)',
  },
  { flag: 'host', kind: 'string', key: 'host', default: '127.0.0.1', help: 'address to listen on' },
  {
    flag: 'redis',
    kind: 'string',
    key: 'redisUrl',
    default: 'none (memory broker)',
    help: 'use the Redis broker at this URL (redis://host:port/db) to run several nodes',
  },
  {
    flag: 'redis-prefix',
    kind: 'string',
    key: 'redisPrefix',
    default: 'ssehub:{hub}:',
    help: 'prefix of the Redis keys (one deployment per prefix)',
  },
  {
    flag: 'publish-key',
    kind: 'string',
    key: 'publishKey',
    default: 'none',
    help: 'key required as `Authorization: Bearer <key>` by POST /publish and other mutating endpoints',
  },
  {
    flag: 'jwt-secret',
    kind: 'string',
    key: 'jwtSecret',
    default: 'none',
    help: 'HS256 secret (at least 32 bytes) for JWT auth',
  },
  {
    flag: 'jwt-public-key',
    kind: 'file',
    key: 'jwtPublicKey',
    default: 'none',
    help: 'PEM file of the RS256/ES256 public key for JWT auth',
  },
  {
    flag: 'jwt-jwks-url',
    kind: 'string',
    key: 'jwtJwksUrl',
    default: 'none',
    help: 'JWKS URL of the RS256/ES256 keys for JWT auth',
  },
  {
    flag: 'token-cookie',
    kind: 'string',
    key: 'tokenCookie',
    default: 'ssehub_token',
    help: 'cookie that may carry the token',
  },
  {
    flag: 'no-query-token',
    kind: 'flag',
    key: 'allowQueryToken',
    default: 'false',
    help: 'refuse tokens in the `token` query parameter (URLs get logged)',
  },
  {
    flag: 'private-topics',
    kind: 'list',
    key: 'privateTopics',
    default: 'none',
    help: "topic selectors that need a subscriber token, e.g. 'private/*,admin'",
  },
  {
    flag: 'max-connections-per-ip',
    kind: 'nullable-int',
    key: 'maxConnectionsPerIp',
    default: '1000',
    help: "open connections per remote IP, then 429 ('off' for no limit)",
  },
  {
    flag: 'publish-rate',
    kind: 'nullable-int',
    key: 'publishRatePerSecond',
    default: '1000',
    help: "publishes per second per publisher (token or IP; the publish key is exempt), then 429 ('off')",
  },
  {
    flag: 'publish-burst',
    kind: 'int',
    key: 'publishBurst',
    default: '2 x rate',
    help: 'bucket size of the publish rate limit',
  },
  {
    flag: 'headers-timeout-ms',
    kind: 'int',
    key: 'headersTimeoutMs',
    default: '10000',
    help: 'time to receive request headers (slowloris guard)',
  },
  {
    flag: 'request-timeout-ms',
    kind: 'int',
    key: 'requestTimeoutMs',
    default: '30000',
    help: 'time to receive a whole request',
  },
  {
    flag: 'max-header-bytes',
    kind: 'int',
    key: 'maxHeaderBytes',
    default: '16384',
    help: 'largest request line + headers (431 above)',
  },
  {
    flag: 'allow-anonymous-publish',
    kind: 'flag',
    key: 'allowAnonymousPublish',
    default: 'false',
    help: 'allow a non-loopback --host without a publish key',
  },
  {
    flag: 'cors-origins',
    kind: 'origins',
    key: 'corsOrigins',
    default: 'none',
    help: "allowed origins: '*' or a comma-separated list",
  },
  {
    flag: 'max-body-bytes',
    kind: 'int',
    key: 'maxBodyBytes',
    default: '1048576',
    help: 'largest publish body (413 above)',
  },
  {
    flag: 'max-batch-events',
    kind: 'int',
    key: 'maxBatchEvents',
    default: '1000',
    help: 'most events in one POST /publish/batch',
  },
  {
    flag: 'heartbeat-ms',
    kind: 'nullable-int',
    key: 'heartbeatMs',
    default: '15000',
    help: "comment on idle streams every N ms ('off' to disable)",
  },
  {
    flag: 'retry-ms',
    kind: 'nullable-int',
    key: 'retryMs',
    default: '2000',
    help: "`retry:` sent to clients on connect ('off' for none)",
  },
  {
    flag: 'max-connection-age-ms',
    kind: 'nullable-int',
    key: 'maxConnectionAgeMs',
    default: 'off',
    help: 'close streams older than N ms (clients resume)',
  },
  {
    flag: 'max-queued-bytes',
    kind: 'int',
    key: 'maxQueuedBytes',
    default: '262144',
    help: 'unsent bytes per connection before it is closed as a slow consumer',
  },
  {
    flag: 'max-pending-events',
    kind: 'int',
    key: 'maxPendingEvents',
    default: '10000',
    help: 'live events queued per connection while its history replays',
  },
  {
    flag: 'max-connections',
    kind: 'nullable-int',
    key: 'maxConnections',
    default: '10000',
    help: "open connections in all ('off' for no limit)",
  },
  {
    flag: 'max-connections-per-client',
    kind: 'nullable-int',
    key: 'maxConnectionsPerClient',
    default: '100',
    help: "open connections per client id ('off' for no limit)",
  },
  {
    flag: 'max-topics-per-connection',
    kind: 'int',
    key: 'maxTopicsPerConnection',
    default: '32',
    help: 'topics one connection may follow',
  },
  {
    flag: 'max-topics-per-publish',
    kind: 'int',
    key: 'maxTopicsPerPublish',
    default: '100',
    help: 'topics one publish may target',
  },
  {
    flag: 'overflow',
    kind: 'overflow',
    key: 'overflow',
    default: 'reject',
    help: "at a connection limit: 'reject' (503) or 'evict' (least recently active)",
  },
  {
    flag: 'history-max-events',
    kind: 'int',
    key: 'historyMaxEvents',
    default: '10000',
    help: 'events kept for Last-Event-ID replay',
  },
  {
    flag: 'history-max-age-ms',
    kind: 'nullable-int',
    key: 'historyMaxAgeMs',
    default: '3600000',
    help: "how long events stay in the history ('off': count bound only)",
  },
  {
    flag: 'ended-topic-ttl-ms',
    kind: 'int',
    key: 'endedTopicTtlMs',
    default: '3600000',
    help: 'how long a finished topic is remembered (final event or 204 on reconnect)',
  },
  {
    flag: 'max-ended-topics',
    kind: 'int',
    key: 'maxEndedTopics',
    default: '10000',
    help: 'finished topics remembered at most',
  },
  {
    flag: 'max-topic-length',
    kind: 'int',
    key: 'maxTopicLength',
    default: '256',
    help: 'longest topic name',
  },
  {
    flag: 'max-client-id-length',
    kind: 'int',
    key: 'maxClientIdLength',
    default: '256',
    help: 'longest client id',
  },
  {
    flag: 'max-event-name-length',
    kind: 'int',
    key: 'maxEventNameLength',
    default: '128',
    help: 'longest event name',
  },
  {
    flag: 'shutdown-timeout-ms',
    kind: 'int',
    key: 'shutdownTimeoutMs',
    default: '5000',
    help: 'graceful shutdown budget on SIGINT/SIGTERM',
  },
  {
    flag: 'no-dashboard',
    kind: 'flag',
    key: 'dashboard',
    default: 'false',
    help: 'do not serve the dashboard at /',
  },
  {
    flag: 'tls-cert',
    kind: 'file',
    key: 'tlsCert',
    default: 'none (plain HTTP/1.1)',
    help: 'PEM certificate file: with --tls-key, serve HTTP/2 over TLS with HTTP/1.1 fallback',
  },
  {
    flag: 'tls-key',
    kind: 'file',
    key: 'tlsKey',
    default: 'none',
    help: 'PEM private key file of --tls-cert',
  },
  {
    flag: 'gzip',
    kind: 'flag',
    key: 'gzip',
    default: 'false',
    help: 'gzip event streams (flushed per event) for clients that send Accept-Encoding: gzip',
  },
  {
    flag: 'no-fast-path',
    kind: 'flag',
    key: 'fastPath',
    default: 'false',
    help: 'answer every request with node:http, also plain /publish and /events (slower, more memory)',
  },
  {
    flag: 'no-demos',
    kind: 'flag',
    key: 'demos',
    default: 'false',
    help: 'do not serve the demos at /demo/chat, /demo/progress, /demo/ticker',
  },
  {
    flag: 'llm-url',
    kind: 'string',
    key: 'llmUrl',
    default: 'none (a mock model)',
    help: 'OpenAI-compatible upstream the chat demo relays (base URL or .../v1/chat/completions)',
  },
  {
    flag: 'llm-key',
    kind: 'string',
    key: 'llmKey',
    default: 'none',
    help: 'API key sent to --llm-url as `Authorization: Bearer <key>`',
  },
  {
    flag: 'llm-model',
    kind: 'string',
    key: 'llmModel',
    default: 'gpt-4o-mini',
    help: 'model the chat demo asks --llm-url for',
  },
  {
    flag: 'no-metrics',
    kind: 'flag',
    key: 'metrics',
    default: 'false',
    help: 'do not serve /metrics',
  },
]

/** The env var of a flag: `--max-body-bytes` -> `SSEHUB_MAX_BODY_BYTES`. */
export function envName(flag: string): string {
  return 'SSEHUB_' + flag.toUpperCase().replaceAll('-', '_')
}

/** `ssehub serve --help`. */
export function serveHelp(): string {
  const rows = serveSpecs.map((spec) => {
    const left = `  --${spec.flag}${spec.kind === 'flag' ? '' : ' <value>'}`
    return `${left.padEnd(40)} ${spec.help} [default: ${spec.default}; env ${envName(spec.flag)}]`
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

const booleanWords: Record<string, boolean> = {
  '1': true,
  true: true,
  yes: true,
  '0': false,
  false: false,
  no: false,
}

function parseValue(spec: Spec, raw: string, source: string): unknown {
  switch (spec.kind) {
    case 'string':
      if (raw === '') throw new UsageError(`${source} needs a non-empty value`)
      return raw
    case 'int':
    case 'nullable-int': {
      if (spec.kind === 'nullable-int' && raw === 'off') return null
      if (!/^\d{1,15}$/.test(raw) || (spec.key !== 'port' && Number(raw) === 0)) {
        throw new UsageError(
          `${source} expects a ${spec.key === 'port' ? 'non-negative' : 'positive'} integer${spec.kind === 'nullable-int' ? " or 'off'" : ''}, got ${JSON.stringify(raw)}`,
        )
      }
      const value = Number(raw)
      if (spec.key === 'port' && value > 65535)
        throw new UsageError(`${source} must be at most 65535, got ${raw}`)
      return value
    }
    case 'flag': {
      const value = booleanWords[raw.toLowerCase()]
      if (value === undefined)
        throw new UsageError(`${source} expects true or false, got ${JSON.stringify(raw)}`)
      return value
    }
    case 'overflow':
      if (raw !== 'reject' && raw !== 'evict') {
        throw new UsageError(`${source} expects 'reject' or 'evict', got ${JSON.stringify(raw)}`)
      }
      return raw
    case 'file': {
      try {
        return readFileSync(raw, 'utf8')
      } catch (error) {
        throw new UsageError(
          `${source}: cannot read ${raw} (${(error as NodeJS.ErrnoException).code ?? 'error'})`,
        )
      }
    }
    case 'list':
      return raw
        .split(',')
        .map((item) => item.trim())
        .filter((item) => item !== '')
    case 'origins': {
      if (raw === '*') return '*'
      const origins = raw
        .split(',')
        .map((origin) => origin.trim())
        .filter((origin) => origin !== '')
      for (const origin of origins) {
        if (!/^https?:\/\/[^/\s]+$/.test(origin)) {
          throw new UsageError(
            `${source}: ${JSON.stringify(origin)} is not an origin like https://app.example.com`,
          )
        }
      }
      return origins
    }
  }
}

/** Parsed `serve` command line: server options plus where to listen. */
export interface ServeConfig {
  readonly options: HubServerOptions
  readonly port: number
  readonly host: string
  /** Redis URL, when the Redis broker is asked for. */
  readonly redisUrl: string | undefined
  /** Redis key prefix. */
  readonly redisPrefix: string | undefined
  readonly help: boolean
}

/**
 * Parses `serve` flags and `SSEHUB_*` env vars into server options.
 * @throws {UsageError} on an unknown flag or a bad value (printed as one line, exit 2).
 */
export function parseServeArgs(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ServeConfig {
  const values = new Map<Spec, unknown>()
  for (const spec of serveSpecs) {
    const raw = env[envName(spec.flag)]
    if (raw !== undefined && raw !== '') values.set(spec, parseValue(spec, raw, envName(spec.flag)))
  }
  let help = false
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!
    if (arg === '--help' || arg === '-h') {
      help = true
      continue
    }
    if (!arg.startsWith('--'))
      throw new UsageError(`unexpected argument ${JSON.stringify(arg)}; see ssehub --help`)
    const eq = arg.indexOf('=')
    const name = arg.slice(2, eq === -1 ? undefined : eq)
    const spec = serveSpecs.find((candidate) => candidate.flag === name)
    if (spec === undefined) throw new UsageError(`unknown option --${name}; see ssehub --help`)
    if (spec.kind === 'flag') {
      values.set(spec, eq === -1 ? true : parseValue(spec, arg.slice(eq + 1), `--${name}`))
      continue
    }
    const raw = eq === -1 ? argv[++i] : arg.slice(eq + 1)
    if (raw === undefined) throw new UsageError(`--${name} needs a value`)
    values.set(spec, parseValue(spec, raw, `--${name}`))
  }
  const options: Record<string, unknown> = {}
  let port = 8080
  let host = '127.0.0.1'
  let redisUrl: string | undefined
  let redisPrefix: string | undefined
  for (const [spec, value] of values) {
    if (spec.key === 'port') port = value as number
    else if (spec.key === 'host') host = value as string
    else if (spec.key === 'redisUrl') redisUrl = value as string
    else if (spec.key === 'redisPrefix') redisPrefix = value as string
    // --no-dashboard / --no-metrics turn a default-on feature off.
    else if (spec.flag.startsWith('no-')) options[spec.key] = !(value as boolean)
    else options[spec.key] = value
  }
  if (redisUrl !== undefined && !/^rediss?:\/\/\S+$/.test(redisUrl)) {
    throw new UsageError(
      `--redis expects a URL like redis://127.0.0.1:6379/0, got ${JSON.stringify(redisUrl)}`,
    )
  }
  return { options, port, host, redisUrl, redisPrefix, help }
}
