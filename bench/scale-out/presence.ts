/**
 * What cluster-wide presence costs: Redis memory per connection, Redis writes per connection, and
 * how long a burst of connects takes to be counted by another node; plus the time to open the
 * same burst on the memory broker (no presence) in the same run, as a ratio.
 * Run: npx tsx bench/scale-out/presence.ts [connections]   (default 5000; a private redis-server)
 */
import { request, type ClientRequest } from 'node:http'
import type { Broker } from '../../src/broker/broker.js'
import { RedisBroker } from '../../src/broker/redis.js'
import { createHubServer } from '../../src/server/server.js'
import { startRedis } from '../../test/helpers/redis-server.js'

const count = Number(process.argv[2] ?? 5000)
const redis = await startRedis()
const admin = redis.client()

/** Opens `count` streams (10 topics, 100 client ids) and resolves once all have their headers. */
async function openAll(url: string): Promise<ClientRequest[]> {
  const requests: ClientRequest[] = []
  let opened = 0
  await new Promise<void>((resolve, reject) => {
    for (let i = 0; i < count; i++) {
      const req = request(`${url}/events?topic=t${i % 10}&clientId=c${i % 100}`, (res) => {
        if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`))
        res.resume()
        if (++opened === count) resolve()
      })
      req.on('error', reject)
      req.end()
      requests.push(req)
    }
  })
  return requests
}

async function start(broker: Broker | undefined): Promise<{ url: string; close(): Promise<void> }> {
  const server = createHubServer({
    heartbeatMs: null,
    maxConnections: null,
    maxConnectionsPerClient: null,
    ...(broker === undefined ? {} : { broker }),
  })
  const address = await server.listen(0, '127.0.0.1')
  return { url: `http://127.0.0.1:${address.port}`, close: () => server.close() }
}

async function total(url: string): Promise<number> {
  let sum = 0
  for (let t = 0; t < 10; t++) {
    const body = (await (await fetch(`${url}/topics/t${t}`)).json()) as { subscribers: number }
    sum += body.subscribers
  }
  return sum
}

// The memory broker: the time to open the burst, no presence.
const memory = await start(undefined)
let began = performance.now()
let streams = await openAll(memory.url)
const memoryOpenMs = performance.now() - began
for (const req of streams) req.destroy()
await memory.close()

// Two Redis nodes: open the burst on one, watch the other count it.
const prefix = 'bench:{h}:'
const clients = [redis.client(), redis.client()]
const brokers = clients.map((client, i) => new RedisBroker({ client, prefix, nodeId: `n${i}` }))
const [a, b] = await Promise.all(brokers.map((broker) => start(broker)))
const hsetBefore = Number(
  /cmdstat_hset:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0,
)
began = performance.now()
streams = await openAll(a!.url)
const redisOpenMs = performance.now() - began
while ((await total(b!.url)) < count) await new Promise((resolve) => setTimeout(resolve, 10))
const visibleMs = performance.now() - began
const hsetCalls =
  Number(/cmdstat_hset:calls=(\d+)/.exec(await admin.info('commandstats'))?.[1] ?? 0) - hsetBefore
let presenceBytes = 0
for (const kind of ['topics', 'clients', 'conns']) {
  presenceBytes += Number(await admin.memory('USAGE', `${prefix}node:n0:${kind}`, 'SAMPLES', 0))
}
for (const req of streams) req.destroy()
await a!.close()
await b!.close()
for (const broker of brokers) await broker.close()
for (const client of clients) client.disconnect()
const version = /redis_version:(\S+)/.exec(await admin.info('server'))?.[1]
admin.disconnect()
await redis.stop()

console.log(
  JSON.stringify(
    {
      redis: version,
      connections: count,
      memoryBrokerOpenMs: Math.round(memoryOpenMs),
      redisBrokerOpenMs: Math.round(redisOpenMs),
      openRatio: Number((redisOpenMs / memoryOpenMs).toFixed(2)),
      countedByOtherNodeAfterMs: Math.round(visibleMs),
      hsetCalls,
      connectionsPerHset: Math.round(count / Math.max(1, hsetCalls)),
      presenceBytes,
      presenceBytesPerConnection: Math.round(presenceBytes / count),
    },
    null,
    2,
  ),
)
