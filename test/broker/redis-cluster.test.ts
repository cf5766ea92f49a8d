/**
 * The Redis broker on a real 3-master Redis Cluster: the broker contract unchanged (each broker
 * on its own hash tag, so the brokers of this file spread over the masters), and the refusals
 * that keep a deployment from failing at its first publish.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RedisBroker } from '../../src/broker/redis.js'
import { runCli } from '../helpers/cli.js'
import { startRedisCluster, type TestRedisCluster } from '../helpers/redis-cluster.js'
import { describeBrokerContract, noopSink } from './contract.js'

let cluster: TestRedisCluster
let prefixes = 0
beforeAll(async () => {
  cluster = await startRedisCluster()
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

describe('RedisBroker on a Redis Cluster', () => {
  it('puts every key in the slot of its prefix: log, meta, finished topics, idempotency, presence', async () => {
    const client = cluster.client()
    const prefix = `keys:{k}:`
    const broker = new RedisBroker({ client, prefix, blockMs: 200, presenceFlushMs: 10 })
    await broker.start(noopSink)
    broker.presence.start({ stats: () => ({}) })
    await broker.publish({ keys: ['a'], data: 'x', idempotencyKey: 'once' })
    await broker.publish({ keys: ['b'], data: 'y', close: true })
    // Every key the broker wrote is on the master of `{k}`, and there only.
    const master = await cluster.masterOf(prefix)
    const keys = await cluster.node(master).keys('keys:*')
    expect(keys.sort()).toEqual(
      expect.arrayContaining([
        `${prefix}log`,
        `${prefix}meta`,
        `${prefix}end:b`,
        `${prefix}idem:once`,
        `${prefix}nodes`,
      ]),
    )
    for (const port of cluster.ports.filter((port) => port !== master))
      expect(await cluster.node(port).keys('keys:*')).toEqual([])
    await broker.close()
  })

  it('refuses a prefix without a hash tag: the publish script would fail with CROSSSLOT', () => {
    for (const prefix of ['ssehub:', 'a{}b:', 'a{b:'])
      expect(() => new RedisBroker({ client: cluster.client(), prefix })).toThrow(
        /Expected `prefix` to contain a Redis Cluster hash tag such as `\{hub\}`/,
      )
  })

  it('ssehub serve refuses a cluster node given as redis:// and a tagless --redis-prefix, in one line', async () => {
    const node = runCli([
      'serve',
      '--port',
      '0',
      '--redis',
      `redis://127.0.0.1:${cluster.ports[0]}`,
    ])
    expect(await node.exited).toBe(2)
    expect(node.stderr()).toBe(
      `ssehub: redis://127.0.0.1:${cluster.ports[0]} is a Redis Cluster node: give the cluster as --redis redis+cluster://host:port,host:port\n`,
    )
    const prefix = runCli([
      'serve',
      '--port',
      '0',
      '--redis',
      cluster.url,
      '--redis-prefix',
      'app:',
    ])
    expect(await prefix.exited).toBe(2)
    expect(prefix.stderr()).toMatch(
      /^ssehub: Expected `prefix` to contain a Redis Cluster hash tag/,
    )
    expect(prefix.stderr().trimEnd().split('\n')).toHaveLength(1)
  })
})
