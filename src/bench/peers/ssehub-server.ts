/**
 * ssehub as the bench runs it: `createHubServer` with the limits meant for a public server
 * lifted (connections, per-IP, publish rate), everything else at its default. History size and
 * heartbeat come from the environment so the feature-cost rows can vary them. With
 * `BENCH_REDIS_URL` (the `ssehub-redis` server), the Redis broker on that Redis, connected as
 * `ssehub serve --redis` connects (no offline queue: a publish fails at once while Redis is away).
 */
// Run from dist/ (builtFile): the built server, as `npm start` and users run it, not the sources
// through tsx, whose transform adds work to hot paths (esbuild's keep-names wrappers).
import { Redis } from 'ioredis'
import { RedisBroker } from '../../broker/redis.js'
import { createHubServer } from '../../server/index.js'
import { serve } from './harness.js'

const historyMaxEvents = Number(process.env.BENCH_HISTORY_MAX_EVENTS ?? 10_000)
const redisUrl = process.env.BENCH_REDIS_URL
const client =
  redisUrl === undefined
    ? null
    : new Redis(redisUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 1 })
// Connected before the port is printed: the bench's first request finds the broker ready.
if (client !== null && client.status !== 'ready')
  await new Promise<void>((resolve) => client.once('ready', () => resolve()))
const broker = client === null ? undefined : new RedisBroker({ client, historyMaxEvents })
const hubServer = createHubServer({
  maxConnections: null,
  maxConnectionsPerIp: null,
  maxConnectionsPerClient: null,
  publishRatePerSecond: null,
  maxTopicsPerPublish: 100,
  historyMaxEvents,
  metrics: false,
  fastPath: process.env.BENCH_FAST_PATH !== '0',
  ...(broker === undefined ? {} : { broker }),
})
serve(hubServer.server)
