/**
 * `--redis` (`SSEHUB_REDIS_URL`): one server or a Redis Cluster's seed nodes; anything else is
 * refused with one line saying what is wrong and which forms are accepted.
 */
import { describe, expect, it } from 'vitest'
import { parseRedisUrl } from '../../src/cli/redis-url.js'
import { parseServeArgs } from '../../src/cli/serve-options.js'

describe('--redis', () => {
  it('takes one server as ioredis reads its URL', () => {
    expect(parseRedisUrl('redis://10.0.0.5:6379/2')).toEqual({
      kind: 'server',
      url: 'redis://10.0.0.5:6379/2',
      display: 'redis://10.0.0.5:6379/2',
    })
    expect(parseRedisUrl('rediss://user:secret@h:6380')).toMatchObject({
      kind: 'server',
      display: 'rediss://user:***@h:6380',
    })
  })

  it('takes a cluster as redis+cluster://seed,seed (port 6379 when left out; rediss+ for TLS)', () => {
    expect(parseRedisUrl('redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002')).toEqual({
      kind: 'cluster',
      seeds: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 6379 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
      username: undefined,
      password: undefined,
      display: 'redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002',
    })
    expect(parseRedisUrl('rediss+cluster://app:p%40ss@a:1,b:2/')).toMatchObject({
      kind: 'cluster',
      tls: true,
      username: 'app',
      password: 'p@ss',
      display: 'rediss+cluster://app:***@a:1,b:2/',
    })
    expect(parseRedisUrl('redis+cluster://:pw@a:1')).toMatchObject({
      username: undefined,
      password: 'pw',
    })
  })

  it.each([
    ['localhost:6379', '--redis expects a URL like redis://127.0.0.1:6379/0'],
    ['redis://a:1 b', '--redis expects a URL'],
    [
      'redis://a:1,b:2',
      'lists several hosts; for a Redis Cluster write redis+cluster://host:port,host:port',
    ],
    ['memcached://a:1', '--redis: unknown scheme "memcached://"; it expects a URL like'],
    ['redis+cluster://a:1,,b:2', '--redis: seed node 2 of "redis+cluster://a:1,,b:2" is empty'],
    ['redis+cluster://', '--redis: seed node 1 of "redis+cluster://" is empty'],
    ['redis+cluster://a:99999', '--redis: seed node 1 ("a:99999") is not host:port'],
    [
      'redis+cluster://a:1/3',
      '--redis: a Redis Cluster has database 0 only and takes no path or query; drop "/3"',
    ],
    ['redis+cluster://u:secret@a:1?x=1', 'drop'],
  ])('refuses %j', (value, message) => {
    expect(() => parseRedisUrl(value)).toThrow(message)
  })

  it('never prints a password in a refusal', () => {
    expect(() => parseRedisUrl('redis+cluster://u:secret@a:1/5')).toThrow(
      /"redis\+cluster:\/\/u:\*\*\*@a:1\/5"/,
    )
    expect(() => parseRedisUrl('redis+cluster://u:secret@a:1/5')).not.toThrow(/secret/)
  })

  it('reads SSEHUB_REDIS_URL the same way', () => {
    const config = parseServeArgs([], { SSEHUB_REDIS_URL: 'redis+cluster://a:7000,b:7001' })
    expect(config.redis).toMatchObject({ kind: 'cluster', seeds: [{ host: 'a' }, { host: 'b' }] })
    expect(() => parseServeArgs([], { SSEHUB_REDIS_URL: 'redis+cluster://a:1,,b' })).toThrow(
      'seed node 2',
    )
  })
})
