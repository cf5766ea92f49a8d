/**
 * The `--redis` value (`SSEHUB_REDIS_URL`): one Redis server, or the seed nodes of a Redis Cluster.
 *
 * - `redis://[user:password@]host[:port][/db]` (`rediss://` for TLS): one server, as ioredis reads it;
 * - `redis+cluster://[user:password@]host[:port][,host[:port]...]` (`rediss+cluster://` for TLS):
 *   a Redis Cluster; the nodes listed are seeds (any few of its masters or replicas), the client
 *   learns the rest from them. A cluster has database 0 only, so no `/db`.
 *
 * Parsed once, here, so that a malformed value stops `serve` with one line before it connects.
 */
import { UsageError } from './io.js'

/** A seed node of a cluster. */
export interface RedisSeed {
  readonly host: string
  readonly port: number
}

/** Where `--redis` points. `display` is the value with its password hidden, for messages. */
export type RedisTarget =
  | { readonly kind: 'server'; readonly url: string; readonly display: string }
  | {
      readonly kind: 'cluster'
      readonly seeds: readonly RedisSeed[]
      readonly tls: boolean
      readonly username: string | undefined
      readonly password: string | undefined
      readonly display: string
    }

const USAGE =
  "a URL like redis://127.0.0.1:6379/0 (one server; rediss:// for TLS) or redis+cluster://10.0.0.1:6379,10.0.0.2:6379 (a Redis Cluster's seed nodes; rediss+cluster:// for TLS)"

/**
 * Parses a `--redis` value.
 * @throws {UsageError} saying what is wrong and the accepted forms.
 */
export function parseRedisUrl(value: string, flag = '--redis'): RedisTarget {
  const scheme = /^([a-z+]+):\/\//i.exec(value)?.[1]?.toLowerCase()
  if (/\s/.test(value) || scheme === undefined) {
    throw new UsageError(`${flag} expects ${USAGE}, got ${JSON.stringify(hide(value))}`)
  }
  if (scheme === 'redis' || scheme === 'rediss') {
    if (/^[^/?#]*,/.test(value.slice(scheme.length + 3))) {
      throw new UsageError(
        `${flag}: ${JSON.stringify(hide(value))} lists several hosts; for a Redis Cluster write ${scheme}+cluster://host:port,host:port`,
      )
    }
    let url: URL
    try {
      url = new URL(value)
    } catch {
      throw new UsageError(`${flag} expects ${USAGE}, got ${JSON.stringify(hide(value))}`)
    }
    if (url.hostname === '')
      throw new UsageError(
        `${flag}: no host in ${JSON.stringify(hide(value))}; it expects ${USAGE}`,
      )
    return { kind: 'server', url: value, display: hide(value) }
  }
  if (scheme !== 'redis+cluster' && scheme !== 'rediss+cluster') {
    throw new UsageError(
      `${flag}: unknown scheme ${JSON.stringify(`${scheme}://`)}; it expects ${USAGE}`,
    )
  }
  const rest = value.slice(scheme.length + 3)
  const slash = rest.search(/[/?#]/)
  const authority = slash === -1 ? rest : rest.slice(0, slash)
  const path = slash === -1 ? '' : rest.slice(slash)
  if (path !== '' && path !== '/' && path !== '/0') {
    throw new UsageError(
      `${flag}: a Redis Cluster has database 0 only and takes no path or query; drop ${JSON.stringify(path)} from ${JSON.stringify(hide(value))}`,
    )
  }
  const at = authority.lastIndexOf('@')
  const userinfo = at === -1 ? null : authority.slice(0, at)
  const hosts = authority.slice(at + 1)
  const seeds = hosts.split(',').map((hostPort, index) => {
    if (hostPort === '') {
      throw new UsageError(
        `${flag}: seed node ${index + 1} of ${JSON.stringify(hide(value))} is empty; list them as host:port,host:port`,
      )
    }
    let url: URL
    try {
      url = new URL(`redis://${hostPort}`)
    } catch {
      throw new UsageError(
        `${flag}: seed node ${index + 1} (${JSON.stringify(hostPort)}) is not host:port`,
      )
    }
    if (url.hostname === '' || url.username !== '' || url.pathname !== '') {
      throw new UsageError(
        `${flag}: seed node ${index + 1} (${JSON.stringify(hostPort)}) is not host:port`,
      )
    }
    // IPv6 literals come back bracketed; ioredis wants the bare address.
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1')
    return { host, port: url.port === '' ? 6379 : Number(url.port) }
  })
  let username: string | undefined
  let password: string | undefined
  if (userinfo !== null) {
    const colon = userinfo.indexOf(':')
    try {
      username = decodeURIComponent(colon === -1 ? userinfo : userinfo.slice(0, colon))
      password = colon === -1 ? undefined : decodeURIComponent(userinfo.slice(colon + 1))
    } catch {
      throw new UsageError(
        `${flag}: the user or password of a Redis Cluster URL is not valid percent-encoding`,
      )
    }
    if (username === '') username = undefined
  }
  return {
    kind: 'cluster',
    seeds,
    tls: scheme === 'rediss+cluster',
    username,
    password,
    display: hide(value),
  }
}

/** `value` with the password of its user info replaced by `***`. */
function hide(value: string): string {
  return value.replace(/^([a-z+]+:\/\/[^:@/]*:)[^@/]*@/i, '$1***@')
}
