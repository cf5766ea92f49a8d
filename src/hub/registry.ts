/**
 * The registry: every member of the hub, indexed by topic, by client id and by remote address,
 * and the admission policy that keeps those counts within the hub's limits.
 */
import type { Presence } from '../broker/broker.js'
import type { Connection } from '../connection/connection.js'
import { ErrorCodes, SseError } from '../errors.js'
import type { ResolvedHubOptions } from './hub-options.js'
import { ALL_KEY, CLIENT_PREFIX, type HubCounters, type Member } from './member.js'

/** The limits {@link Registry.admit} enforces. */
export type AdmissionLimits = Pick<
  ResolvedHubOptions,
  'maxConnections' | 'maxConnectionsPerClient' | 'maxConnectionsPerIp' | 'overflow'
>

/** Members by connection, topic, client id and IP. A closed connection leaves every index at once. */
export class Registry {
  /** Every member, in connect order (the sweep relies on it). */
  readonly members = new Map<Connection, Member>()
  /** Members by topic key. */
  readonly topics = new Map<string, Set<Member>>()
  /** Members by client key (`@c/<clientId>`). */
  readonly clients = new Map<string, Set<Member>>()
  private readonly perIp = new Map<string, number>()

  constructor(
    private readonly limits: AdmissionLimits,
    private readonly counters: HubCounters,
    /** The cluster's presence, told of every join and leave (a broker for several nodes). */
    private readonly presence: Presence | null = null,
  ) {}

  /** The members that follow routing key `key` (a topic or a client key; not `@all`). */
  find(key: string): ReadonlySet<Member> | undefined {
    return (key.startsWith(CLIENT_PREFIX) ? this.clients : this.topics).get(key)
  }

  /** The members of `clientId`. */
  ofClient(clientId: string): ReadonlySet<Member> | undefined {
    return this.clients.get(CLIENT_PREFIX + clientId)
  }

  /**
   * Decides whether a connection from `ip` for `clientId` may join: `null` when there is room
   * (evicting the least recently active connection first under the `evict` policy), else the
   * refusal. The per-IP limit never evicts: one address must not push out others.
   */
  admit(clientId: string | undefined, ip: string | undefined): SseError | null {
    const { maxConnectionsPerIp, maxConnectionsPerClient, maxConnections, overflow } = this.limits
    if (
      ip !== undefined &&
      maxConnectionsPerIp !== null &&
      (this.perIp.get(ip) ?? 0) >= maxConnectionsPerIp
    ) {
      return new SseError(
        ErrorCodes.RATE_LIMITED,
        `Too many connections from ${ip} (maxConnectionsPerIp ${maxConnectionsPerIp}); close some or retry later.`,
      )
    }
    if (clientId !== undefined && maxConnectionsPerClient !== null) {
      const own = this.ofClient(clientId)
      if (own !== undefined && own.size >= maxConnectionsPerClient) {
        if (overflow === 'reject') {
          return new SseError(
            ErrorCodes.LIMIT_REACHED,
            `Client ${JSON.stringify(clientId)} already has ${own.size} connections (maxConnectionsPerClient); close one or retry later.`,
          )
        }
        this.evictLeastRecent(own.values())
      }
    }
    if (maxConnections !== null && this.members.size >= maxConnections) {
      if (overflow === 'reject') {
        return new SseError(
          ErrorCodes.LIMIT_REACHED,
          `The hub holds its maximum of ${maxConnections} connections (maxConnections); retry later.`,
        )
      }
      this.evictLeastRecent(this.members.values())
    }
    return null
  }

  /** Adds `member` to every index of its keys. */
  add(member: Member): void {
    const ip = member.connection.remoteAddress
    if (ip !== undefined) this.perIp.set(ip, (this.perIp.get(ip) ?? 0) + 1)
    this.members.set(member.connection, member)
    for (const key of member.keys) {
      if (key === ALL_KEY) continue
      const index = key.startsWith(CLIENT_PREFIX) ? this.clients : this.topics
      let set = index.get(key)
      if (set === undefined) index.set(key, (set = new Set()))
      set.add(member)
    }
    this.presence?.joined(member.connection)
  }

  /** Removes the member of `connection` from every index; returns it (`undefined` if none). */
  remove(connection: Connection): Member | undefined {
    const member = this.members.get(connection)
    if (member === undefined) return undefined
    this.members.delete(connection)
    const ip = connection.remoteAddress
    if (ip !== undefined) {
      const count = (this.perIp.get(ip) ?? 1) - 1
      if (count <= 0) this.perIp.delete(ip)
      else this.perIp.set(ip, count)
    }
    // Drop the replay queue too: publications queued for a closed connection are never sent.
    member.queue = null
    for (const key of member.keys) {
      if (key === ALL_KEY) continue
      const index = key.startsWith(CLIENT_PREFIX) ? this.clients : this.topics
      const set = index.get(key)
      if (set === undefined) continue
      set.delete(member)
      if (set.size === 0) index.delete(key)
    }
    this.presence?.left(connection)
    return member
  }

  // O(n) in the candidates, but it runs only at a limit, never on the publish path.
  private evictLeastRecent(candidates: Iterable<Member>): void {
    let victim: Member | undefined
    for (const member of candidates) {
      if (victim === undefined || member.connection.lastWriteAt < victim.connection.lastWriteAt)
        victim = member
    }
    if (victim === undefined) return
    this.counters.evictions++
    // Its close runs the hub's close path, which removes it from here at once.
    victim.connection.end('evicted')
  }
}
