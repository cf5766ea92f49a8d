/**
 * Redis memory per 1,000 events of the Redis broker's stream.
 * Run: npx tsx bench/scale-out/redis-memory.ts [redis-port]   (default: a private redis-server)
 */
import { RedisBroker } from '../../src/broker/redis.js'
import { startRedis } from '../../test/helpers/redis-server.js'

const redis = await startRedis()
const client = redis.client()
const rows: {
  payloadBytes: number
  events: number
  streamBytes: number
  bytesPer1000Events: number
}[] = []
for (const size of [50, 200, 1000]) {
  const prefix = `mem${size}:{h}:`
  const broker = new RedisBroker({ client, prefix, historyMaxEvents: 100_000 })
  await broker.start({
    publication() {},
    command() {},
    reset() {},
    error() {},
    unavailable() {},
    recovered() {},
  })
  const data = 'x'.repeat(size)
  const events = 10_000
  for (let i = 0; i < events; i++)
    await broker.publish({ keys: [`topic-${i % 50}`], event: 'update', data })
  const bytes = Number(await client.memory('USAGE', `${prefix}log`, 'SAMPLES', 0))
  rows.push({
    payloadBytes: size,
    events,
    streamBytes: bytes,
    bytesPer1000Events: Math.round((bytes / events) * 1000),
  })
  await broker.close()
}
const version = ((await client.info('server')).match(/redis_version:(\S+)/) ?? [])[1]
console.log(JSON.stringify({ redis: version, rows }, null, 2))
client.disconnect()
await redis.stop()
