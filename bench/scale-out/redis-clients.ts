/**
 * Why the Redis broker is written against ioredis: the same XADD workload through ioredis and
 * node-redis (`redis`), in one run, on a private redis-server.
 * Run: npx tsx bench/scale-out/redis-clients.ts   -> bench/results/redis-clients.md
 */
import { writeFileSync } from 'node:fs'
import { createClient } from 'redis'
import { startRedis } from '../../test/helpers/redis-server.js'

const redis = await startRedis()
const payload = 'x'.repeat(200)
const total = 20_000

async function measure(
  name: string,
  xadd: (key: string) => Promise<unknown>,
): Promise<{ name: string; serial: number; inFlight256: number }> {
  const key = `bench:${name}`
  let start = performance.now()
  for (let i = 0; i < total / 4; i++) await xadd(key)
  const serial = Math.round(total / 4 / ((performance.now() - start) / 1000))
  start = performance.now()
  let next = 0
  await Promise.all(
    Array.from({ length: 256 }, async () => {
      while (next++ < total) await xadd(key)
    }),
  )
  const inFlight256 = Math.round(total / ((performance.now() - start) / 1000))
  return { name, serial, inFlight256 }
}

const io = redis.client()
const nodeRedis = createClient({ url: redis.url })
await nodeRedis.connect()
const rows: { name: string; serial: number; inFlight256: number }[] = []
for (let round = 0; round < 2; round++) {
  rows.push(
    await measure('ioredis', (key) => io.xadd(key, 'MAXLEN', '~', '10000', '*', 'd', payload)),
  )
  rows.push(
    await measure('node-redis', (key) =>
      nodeRedis.xAdd(
        key,
        '*',
        { d: payload },
        { TRIM: { strategy: 'MAXLEN', strategyModifier: '~', threshold: 10000 } },
      ),
    ),
  )
}
await nodeRedis.quit()
await redis.stop()
const best = (name: string, field: 'serial' | 'inFlight256'): number =>
  Math.max(...rows.filter((r) => r.name === name).map((r) => r[field]))
const lines = [
  '# Redis clients: XADD of 200-byte entries (best of 2 rounds, one process, loopback)',
  '',
  'Command: `npx tsx bench/scale-out/redis-clients.ts`',
  '',
  '| client | 1 in flight (XADD/s) | 256 in flight (XADD/s) |',
  '| --- | --- | --- |',
  `| ioredis | ${best('ioredis', 'serial')} | ${best('ioredis', 'inFlight256')} |`,
  `| node-redis | ${best('node-redis', 'serial')} | ${best('node-redis', 'inFlight256')} |`,
  `| ratio ioredis / node-redis | ${(best('ioredis', 'serial') / best('node-redis', 'serial')).toFixed(2)}x | ${(best('ioredis', 'inFlight256') / best('node-redis', 'inFlight256')).toFixed(2)}x |`,
  '',
]
writeFileSync('bench/results/redis-clients.md', lines.join('\n'))
console.log(lines.join('\n'))
