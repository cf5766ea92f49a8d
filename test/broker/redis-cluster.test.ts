import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis.js'
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js'
import { describeBrokerContract } from './contract.js'

let cluster: TestRedisCluster
let prefixes = 0
beforeAll(async () => {
  const started = Date.now()
  cluster = await startRedisCluster()
  console.log('cluster up in', Date.now() - started)
}, 30_000)
afterAll(async () => {
  await cluster?.stop()
})

describeBrokerContract('redis cluster', {
  make: (options) =>
    Promise.resolve(
      new RedisBroker({
        client: cluster.client(),
        prefix: `t${++prefixes}:{h${prefixes}}:`,
        blockMs: 200,
        ...options,
      }),
    ),
})

describe('x', () => {
  it('y', () => expect(cluster.ports.length).toBe(3))
})
