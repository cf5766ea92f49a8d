/**
 * The Redis broker's connection: one ioredis `Redis` (a server, a primary behind Sentinel, a
 * managed endpoint) or one ioredis `Cluster`. Both speak the same commands; what differs is how
 * the blocking reader's own connection is made, and that a Cluster needs every key of the broker
 * in one hash slot (a Lua script, a `MULTI` or a pipeline touching two slots fails with
 * `CROSSSLOT`).
 */
import type { Cluster, Redis } from 'ioredis'

/** An ioredis client the broker accepts: a `Redis` or a `Cluster`. */
export type RedisClient = Redis | Cluster

/** Whether `client` is an ioredis `Cluster` (duck-typed: two copies of ioredis may be loaded). */
export function isCluster(client: RedisClient): client is Cluster {
  return client.isCluster
}

/**
 * The hash tag of `key` as Redis Cluster finds it: the text between the first `{` and the first
 * `}` after it, when not empty; `null` when the whole key is hashed.
 * @see https://redis.io/docs/latest/operate/oss_and_stack/reference/cluster-spec/#hash-tags
 */
export function hashTag(key: string): string | null {
  const open = key.indexOf('{')
  if (open === -1) return null
  const close = key.indexOf('}', open + 1)
  if (close === -1 || close === open + 1) return null
  return key.slice(open + 1, close)
}

/**
 * A second connection (or set of connections, for a Cluster) with the client's settings, for the
 * blocking `XREAD`: a blocked connection cannot serve other commands. It queues commands while it
 * connects and never retries one itself (`maxRetriesPerRequest: 0`): the read loop retries from
 * its cursor. A Cluster's reader follows the slot like any Cluster client (`MOVED`, `ASK`, a
 * promoted replica), since ioredis routes `XREAD` by its stream key.
 */
export function readerOf(client: RedisClient): RedisClient {
  if (isCluster(client)) {
    // ioredis merges these redisOptions into the client's own.
    return client.duplicate([], {
      enableOfflineQueue: true,
      redisOptions: { maxRetriesPerRequest: 0 },
    })
  }
  return client.duplicate({ maxRetriesPerRequest: 0, enableOfflineQueue: true })
}
