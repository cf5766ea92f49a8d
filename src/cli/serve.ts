import { Redis } from 'ioredis'
import type { Broker } from '../broker/broker.js'
import { DurableBroker } from '../broker/durable.js'
import { RedisBroker } from '../broker/redis.js'
import { isSseError } from '../errors.js'
import { createHubServer } from '../server/server.js'
import { SHOWCASE_OPTION_NAMES, createShowcase } from '../showcase/index.js'
import { UsageError, type CliIo } from './io.js'
import { serveHelp } from './serve-flags.js'
import { parseServeArgs } from './serve-options.js'

/**
 * `ssehub serve`: runs the hub server until `io.signal` aborts (SIGINT/SIGTERM), then shuts down
 * gracefully and returns 0.
 */
export async function runServe(argv: readonly string[], io: CliIo): Promise<number> {
  const config = parseServeArgs(argv, io.env)
  if (config.help) {
    io.stdout(serveHelp())
    return 0
  }
  const redis = config.redisUrl === undefined ? null : await connectRedis(config.redisUrl)
  let broker: Broker | undefined
  let hubServer: ReturnType<typeof createHubServer>
  try {
    if (redis !== null) {
      broker = new RedisBroker({
        client: redis,
        ...(config.redisPrefix === undefined ? {} : { prefix: config.redisPrefix }),
        ...pick(config.options, ['historyMaxEvents', 'historyMaxAgeMs', 'endedTopicTtlMs']),
      })
    } else if (config.durable !== null) {
      const { dataDir, fsync, historyMaxBytes } = config.durable
      broker = new DurableBroker({
        dataDir,
        ...(fsync === undefined ? {} : { fsync }),
        ...(historyMaxBytes === undefined ? {} : { historyMaxBytes }),
        ...pick(config.options, [
          'historyMaxEvents',
          'historyMaxAgeMs',
          'endedTopicTtlMs',
          'maxEndedTopics',
        ]),
      })
    }
    // The showcase (dashboard, demos) is a part the CLI mounts beside the API.
    const showcase = createShowcase(pick(config.options, SHOWCASE_OPTION_NAMES))
    const serverOptions = { ...config.options }
    for (const name of SHOWCASE_OPTION_NAMES) delete serverOptions[name]
    hubServer = createHubServer({
      ...serverOptions,
      mounts: [showcase],
      ...(broker === undefined ? {} : { broker }),
    })
  } catch (error) {
    redis?.disconnect()
    // Option validation (RangeError) is a bad command line here: one line, exit 2.
    if (error instanceof RangeError || error instanceof TypeError)
      throw new UsageError(error.message)
    throw error
  }
  hubServer.hub.on('error', (error) => io.stderr(`ssehub: ${error.message}\n`))
  try {
    const address = await hubServer.listen(config.port, config.host)
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
    const where = broker instanceof DurableBroker ? `, data in ${broker.dataDir}` : ''
    io.stdout(
      `ssehub listening on ${hubServer.protocol}://${host}:${address.port} (${hubServer.hub.broker.health().broker} broker${where})\n`,
    )
  } catch (error) {
    await hubServer.close()
    await broker?.close()
    redis?.disconnect()
    if (isSseError(error)) throw new UsageError(error.message)
    const code = (error as NodeJS.ErrnoException).code
    if (code === 'EADDRINUSE')
      throw new UsageError(
        `port ${config.port} on ${config.host} is in use; pick another with --port`,
      )
    if (code === 'EACCES')
      throw new UsageError(
        `no permission to listen on ${config.host}:${config.port}; use a port above 1023`,
      )
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
      throw new UsageError(`cannot listen on ${config.host}: no such local address`)
    throw error
  }
  if (!io.signal.aborted) {
    await new Promise<void>((resolve) =>
      io.signal.addEventListener('abort', () => resolve(), { once: true }),
    )
  }
  io.stdout('ssehub: shutting down\n')
  await hubServer.close()
  await broker?.close()
  redis?.disconnect()
  return 0
}

/**
 * Connects to Redis before serving. Commands fail fast while Redis is away (no offline queue), so
 * that a publish answers 503 at once instead of waiting; the client reconnects by itself.
 */
async function connectRedis(url: string): Promise<Redis> {
  const client = new Redis(url, {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
  })
  let lastError = ''
  client.on('error', (error: Error) => (lastError = error.message))
  try {
    await Promise.race([
      client.connect(),
      new Promise((_, reject) =>
        setTimeout(() => reject(new Error('timed out after 5 s')), 5_000).unref(),
      ),
    ])
  } catch (error) {
    client.disconnect()
    throw new UsageError(`cannot reach Redis at ${url}: ${lastError || (error as Error).message}`)
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
