import { readFileSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { Cluster, Redis } from 'ioredis'
import type { Broker } from '../broker/broker.js'
import { DurableBroker } from '../broker/durable.js'
import { RedisBroker, type RedisClient } from '../broker/redis.js'
import { isSseError } from '../errors.js'
import { resolveHubOptions } from '../hub/hub-options.js'
import { resolveServerOptions } from '../server/server-options.js'
import { createHubServer, type AuthRefusal, type HubServer } from '../server/server.js'
import { mockUpstream } from '../relay/mock-model.js'
import type { RelayUpstream } from '../relay/relays.js'
import { SHOWCASE_DEFAULTS, SHOWCASE_OPTION_NAMES, createShowcase } from '../showcase/index.js'
import { UsageError, type CliIo } from './io.js'
import { listenError } from './listen-error.js'
import { LogSampler, createLogger, type LogFields, type Logger } from './log.js'
import { CLI_DEFAULTS, serveHelp } from './serve-flags.js'
import type { RedisTarget } from './redis-url.js'
import { parseServeArgs, type ServeConfig, type ServeOptions } from './serve-options.js'
import {
  createWorkerBroker,
  evictThrough,
  exitWithPrimary,
  isWorkerProcess,
  runPrimary,
  startWorker,
  shareWorkerMetrics,
  workerMetricsSource,
  workerNodeId,
  workerDone,
  workerShuttingDown,
  workerSignal,
} from './workers.js'

/**
 * `ssehub serve`: runs the hub server until `io.signal` aborts (SIGINT/SIGTERM), then shuts down
 * gracefully and returns 0. It logs one line per notable event on stdout (log.ts); a bad command
 * line is one line on stderr and exit 2.
 */
export async function runServe(argv: readonly string[], io: CliIo): Promise<number> {
  const config = parseServeArgs(argv, io.env)
  if (config.help) {
    io.stdout(serveHelp())
    return 0
  }
  // --workers N: this process supervises N workers that are one hub (workers.ts).
  const worker = config.workers > 1 && isWorkerProcess()
  if (config.workers > 1 && !worker) {
    return runPrimary(config, argv, io, {
      storeBroker: () => storeBroker(config),
      memoryOptions: pick(config.options, HISTORY_OPTION_NAMES),
    })
  }
  const redis = config.redis === undefined ? null : await connectRedis(config.redis)
  const log = createLogger({ format: config.logFormat, write: io.stdout })
  const sampler = new LogSampler(log)
  if (worker) exitWithPrimary(log)
  // A worker stops on its own signal or on its primary's drain message.
  const stop = worker ? workerSignal(io.signal) : io.signal
  let broker: Broker | undefined
  let hubServer: HubServer
  try {
    if (redis !== null) {
      const { nodeId, ...redisOptions } = config.redisOptions
      broker = new RedisBroker({
        client: redis,
        ...redisOptions,
        // Each worker is a node of its own: ids tell them apart.
        ...(worker ? { nodeId: workerNodeId(nodeId) } : nodeId === undefined ? {} : { nodeId }),
        ...pick(config.options, [
          'historyMaxEvents',
          'historyMaxAgeMs',
          'endedTopicTtlMs',
          'idempotencyWindowMs',
        ]),
      })
    } else if (worker) {
      // The primary owns the store: a worker reaches it through its link.
      broker = createWorkerBroker(log)
    } else {
      broker = storeBroker(config)
    }
    // The showcase (dashboard, demos) is a part the CLI mounts beside the API.
    const showcase = createShowcase(pick(config.options, SHOWCASE_OPTION_NAMES))
    const serverOptions = { ...config.options }
    for (const name of SHOWCASE_OPTION_NAMES) delete serverOptions[name]
    const { llmUrl, llmKey, llmModel, ...rest } = serverOptions as typeof serverOptions & {
      llmUrl?: string
      llmKey?: string
      llmModel?: string
    }
    hubServer = createHubServer({
      ...rest,
      relayUpstreams: relayUpstreams(rest.relayUpstreams ?? {}, {
        llmUrl,
        llmKey,
        llmModel,
        demos: config.options.demos ?? SHOWCASE_DEFAULTS.demos,
      }),
      mounts: [showcase],
      ...(broker === undefined ? {} : { broker }),
      // A worker's /metrics is the whole hub's (workers.ts).
      ...(worker ? { metricsSource: workerMetricsSource() } : {}),
      onAuthRefused: (refusal) => logAuthRefusal(sampler, refusal),
    })
  } catch (error) {
    redis?.disconnect()
    // Option validation (RangeError) is a bad command line here: one line, exit 2.
    if (error instanceof RangeError || error instanceof TypeError)
      throw new UsageError(error.message)
    throw error
  }
  if (worker) {
    shareWorkerMetrics(hubServer.metrics)
    evictThrough(broker, hubServer.hub)
  }
  watchHub(hubServer, log, sampler)
  try {
    if (worker) {
      // A worker does not listen: the primary accepts and hands it connections (workers.ts).
      await startWorker(hubServer, config.host, log)
    } else {
      const address = await hubServer.listen(config.port, config.host)
      logStart(
        log,
        hubServer,
        address,
        config.options,
        broker instanceof DurableBroker ? broker.dataDir : undefined,
      )
    }
  } catch (error) {
    // (A worker closing its broker here is not its primary going away.)
    if (worker) workerShuttingDown()
    await hubServer.close()
    await broker?.close()
    redis?.disconnect()
    throw listenError(error, config)
  }
  if (!stop.aborted) {
    await new Promise<void>((resolve) =>
      stop.addEventListener('abort', () => resolve(), { once: true }),
    )
  }
  if (worker) workerShuttingDown()
  const streams = hubServer.hub.stats().connections
  const started = Date.now()
  log.log('info', `ssehub shutting down: ending ${streams} stream${streams === 1 ? '' : 's'}`, {
    event: 'shutdown',
    streams,
  })
  await hubServer.close()
  await broker?.close()
  redis?.disconnect()
  // Counts of sampled events still in their window, before the last line.
  sampler.flush()
  const ms = Date.now() - started
  log.log(
    'info',
    `ssehub stopped: ended ${streams} stream${streams === 1 ? '' : 's'} in ${ms} ms`,
    {
      event: 'stopped',
      streams,
      ms,
    },
  )
  if (worker) workerDone()
  return 0
}

/**
 * The relay upstreams: `--relay-upstream`'s, plus `default` from `--llm-url` (the chat demo's
 * upstream before relays were an API), else — while the demos are on — the mock model, so that the
 * chat demo works with nothing configured.
 */
function relayUpstreams(
  given: Readonly<Record<string, RelayUpstream>>,
  llm: {
    llmUrl: string | undefined
    llmKey: string | undefined
    llmModel: string | undefined
    demos: boolean
  },
): Record<string, RelayUpstream> {
  const upstreams: Record<string, RelayUpstream> = { ...given }
  if (llm.llmUrl !== undefined) {
    if (upstreams.default !== undefined)
      throw new UsageError(
        '--llm-url sets the relay upstream default, and --relay-upstream default=... sets it too: keep one',
      )
    upstreams.default = {
      url: llm.llmUrl,
      apiKey: llm.llmKey ?? null,
      model: llm.llmModel ?? CLI_DEFAULTS.llmModel,
    }
  } else if (llm.llmKey !== undefined || llm.llmModel !== undefined) {
    throw new UsageError(
      `--${llm.llmKey !== undefined ? 'llm-key' : 'llm-model'} applies to --llm-url: add --llm-url <url>, or drop it`,
    )
  } else if (upstreams.default === undefined && llm.demos) {
    upstreams.default = mockUpstream()
  }
  return upstreams
}

/** The lines of the hub's events: drops and errors sampled, broker outages one line each. */
function watchHub(hubServer: HubServer, log: Logger, sampler: LogSampler): void {
  const { hub } = hubServer
  const broker = hub.broker.health().broker
  // An SseError is an operational error with a code; anything else is a bug: its stack helps.
  hub.on('error', (error) =>
    sampler.event(
      'error',
      'error',
      error.message,
      isSseError(error) ? { code: error.code } : { stack: error.stack },
    ),
  )
  hub.on('brokerFailed', (error) => {
    const cause = error.cause instanceof Error ? error.cause.message : error.message
    log.log('warn', `broker down (${broker}): ${cause}`, { event: 'broker-down', broker, cause })
  })
  hub.on('brokerRecovered', (downMs) =>
    log.log('info', `broker back (${broker}) after ${seconds(downMs)} s`, {
      event: 'broker-up',
      broker,
      downMs,
    }),
  )
  hub.on('dropped', (connection, reason) => {
    const who: LogFields = {
      connection: connection.id,
      clientId: connection.clientId,
      remoteAddress: connection.remoteAddress,
    }
    if (reason === 'slow-consumer')
      sampler.event(
        reason,
        'warn',
        'closed a slow consumer (it did not read; --max-queued-bytes)',
        who,
      )
    else sampler.event(reason, 'warn', 'evicted a connection to make room (--overflow evict)', who)
  })
}

function logAuthRefusal(sampler: LogSampler, refusal: AuthRefusal): void {
  sampler.event(
    'auth-refused',
    'warn',
    `refused ${refusal.method} ${refusal.path} with ${refusal.status}`,
    {
      status: refusal.status,
      code: refusal.code,
      method: refusal.method,
      path: refusal.path,
      remoteAddress: refusal.remoteAddress,
    },
  )
}

/**
 * The start line: where it listens (the text every script greps: `listening on <url>`), the
 * broker, who may publish, and the limits that are on.
 */
function logStart(
  log: Logger,
  hubServer: HubServer,
  address: AddressInfo,
  options: ServeOptions,
  dataDir: string | undefined,
): void {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
  const url = `${hubServer.protocol}://${host}:${address.port}`
  const broker = hubServer.hub.broker.health().broker
  // Validated already (the server was built from them): resolved for their effective values.
  const hub = resolveHubOptions(options)
  const server = resolveServerOptions(options)
  const jwt = [options.jwtSecret, options.jwtPublicKey, options.jwtJwksUrl].some(
    (value) => value !== undefined && value !== null,
  )
  const auth = [server.publishKey === null ? '' : 'publish-key', jwt ? 'jwt' : '']
    .filter((mode) => mode !== '')
    .join('+')
  const trustProxy = options.trustProxy
  const where = dataDir === undefined ? '' : `, data in ${dataDir}`
  log.log('info', `ssehub listening on ${url} (${broker} broker${where})`, {
    event: 'start',
    version: packageVersion(),
    pid: process.pid,
    url,
    protocol: hubServer.protocol === 'https' ? 'h2+http/1.1 (TLS)' : 'http/1.1',
    broker,
    dataDir,
    node: hubServer.hub.node,
    presenceTtlMs: hubServer.hub.broker.presence?.ttlMs,
    auth: auth === '' ? 'open' : auth,
    // The limits that are on: a limit turned off (`null`) is left out.
    maxConnections: hub.maxConnections ?? undefined,
    maxConnectionsPerClient: hub.maxConnectionsPerClient ?? undefined,
    maxConnectionsPerIp: hub.maxConnectionsPerIp ?? undefined,
    overflow: hub.overflow,
    maxQueuedBytes: hub.maxQueuedBytes,
    publishRatePerSecond: server.publishRatePerSecond ?? undefined,
    publishBurst: server.publishBurst ?? undefined,
    trustProxy:
      trustProxy === undefined || trustProxy === null
        ? undefined
        : Array.isArray(trustProxy)
          ? trustProxy.join(',')
          : String(trustProxy),
  })
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1)
}

let version: string | undefined
function packageVersion(): string {
  version ??= (
    JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      version: string
    }
  ).version
  return version
}

/** The history options every store takes from the command line. */
const HISTORY_OPTION_NAMES = [
  'historyMaxEvents',
  'historyMaxAgeMs',
  'endedTopicTtlMs',
  'maxEndedTopics',
  'idempotencyWindowMs',
  'maxIdempotencyKeys',
] as const

/** The durable broker of `--store durable` (the default), or `undefined` for `--store memory`. */
function storeBroker(config: ServeConfig): Broker | undefined {
  if (config.durable === null) return undefined
  const { dataDir, fsync, historyMaxBytes } = config.durable
  return new DurableBroker({
    dataDir,
    ...(fsync === undefined ? {} : { fsync }),
    ...(historyMaxBytes === undefined ? {} : { historyMaxBytes }),
    ...pick(config.options, HISTORY_OPTION_NAMES),
  })
}

/**
 * Connects to Redis (one server, or a cluster through its seed nodes) before serving. Commands
 * fail fast while Redis is away (no offline queue), so that a publish answers 503 at once instead
 * of waiting; the client reconnects by itself (a Cluster client also follows `MOVED`/`ASK` and a
 * promoted replica).
 */
async function connectRedis(target: RedisTarget): Promise<RedisClient> {
  const client: RedisClient =
    target.kind === 'server'
      ? new Redis(target.url, {
          lazyConnect: true,
          enableOfflineQueue: false,
          maxRetriesPerRequest: 1,
        })
      : new Cluster(
          target.seeds.map(({ host, port }) => ({ host, port })),
          {
            lazyConnect: true,
            enableOfflineQueue: false,
            redisOptions: {
              maxRetriesPerRequest: 1,
              ...(target.username === undefined ? {} : { username: target.username }),
              ...(target.password === undefined ? {} : { password: target.password }),
              ...(target.tls ? { tls: {} } : {}),
            },
          },
        )
  const what = target.kind === 'server' ? 'Redis' : 'the Redis Cluster'
  let lastError = ''
  client.on('error', (error: Error) => (lastError = error.message))
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('timed out after 5 s')), 5_000).unref(),
      ),
    ])
    if (target.kind === 'server' && /cluster_enabled:1/.test(await client.info('cluster'))) {
      // One node of a cluster serves only its slots: the first publish would fail with MOVED.
      throw new UsageError(
        `${target.display} is a Redis Cluster node: give the cluster as --redis redis+cluster://host:port,host:port`,
      )
    }
  } catch (error) {
    client.disconnect()
    if (error instanceof UsageError) throw error
    throw new UsageError(
      `cannot reach ${what} at ${target.display}: ${lastError || (error as Error).message}`,
    )
  }
  return client
}

function pick<T extends object, K extends keyof T>(
  object: T,
  keys: readonly K[],
): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {}
  for (const key of keys) if (object[key] !== undefined) out[key] = object[key]
  return out
}
