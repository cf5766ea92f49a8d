/**
 * The Redis broker on one redis-server vs on a 3-master Redis Cluster (one hash tag: one slot,
 * one shard), in the same run: publishes/s at a given concurrency and the time until a second
 * broker node has read them all. Also the slot's shard alone: what a single master can take is
 * the ceiling of the one-slot layout, whatever the number of masters.
 * Run: npx tsx bench/scale-out/cluster.ts [events=5000] [concurrency=32]
 */
import { writeFileSync } from 'node:fs'
import type { BrokerSink } from '../../src/broker/broker.js'
import { RedisBroker, type RedisClient } from '../../src/broker/redis.js'
import { startRedisCluster } from '../../test/helpers/redis-cluster.js'
import { startRedis } from '../../test/helpers/redis-server.js'

const events = Number(process.argv[2] ?? 5000)
const concurrency = Number(process.argv[3] ?? 32)

async function measure(
  name: string,
  client: () => RedisClient,
  prefix: string,
): Promise<{ setup: string; publishesPerSecond: number; readAllMs: number }> {
  let read = 0
  let allRead: () => void = () => {}
  const done = new Promise<void>((resolve) => (allRead = resolve))
  const sink = (count: boolean): BrokerSink => ({
    publication: () => {
      if (count && ++read === events) allRead()
    },
    command() {},
    reset() {},
    error() {},
    unavailable() {},
    recovered() {},
  })
  const publisher = new RedisBroker({ client: client(), prefix, historyMaxEvents: events * 2 })
  const reader = new RedisBroker({ client: client(), prefix, historyMaxEvents: events * 2 })
  await publisher.start(sink(false))
  await reader.start(sink(true))
  const started = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < events) {
        const i = next++
        await publisher.publish({ keys: [`topic-${i % 50}`], data: 'x'.repeat(200) })
      }
    }),
  )
  const published = performance.now()
  await done
  const finished = performance.now()
  await publisher.close()
  await reader.close()
  return {
    setup: name,
    publishesPerSecond: Math.round(events / ((published - started) / 1000)),
    readAllMs: Math.round(finished - started),
  }
}

const single = await startRedis()
const cluster = await startRedisCluster()
const rows = []
try {
  // Alternated, twice each, so that a busy machine weighs on both alike.
  for (let round = 0; round < 2; round++) {
    rows.push(await measure('1 redis-server', () => single.client(), `b${round}:{hub}:`))
    rows.push(
      await measure('3-master cluster, one slot', () => cluster.client(), `b${round}:{hub}:`),
    )
  }
} finally {
  await cluster.stop()
  await single.stop()
}
console.table(rows)
writeFileSync(
  new URL('../results/redis-cluster.json', import.meta.url),
  `${JSON.stringify({ command: `npx tsx bench/scale-out/cluster.ts ${events} ${concurrency}`, date: new Date().toISOString(), events, concurrency, payloadBytes: 200, rows }, null, 2)}\n`,
)
