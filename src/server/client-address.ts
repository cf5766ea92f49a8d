/**
 * The client's address behind trusted proxies: `trustProxy` names the peers (addresses, CIDRs,
 * `loopback`) or a hop count whose `X-Forwarded-For` / `Forwarded` (RFC 7239 `for=`) headers are
 * believed. The list is walked from the right, skipping trusted addresses; the first untrusted one
 * is the client. A request from any other peer, or with a malformed header, keeps the peer's own
 * address: a client cannot choose its address by sending the header itself.
 * @see https://www.rfc-editor.org/rfc/rfc7239
 */
import type { IncomingHttpHeaders } from 'node:http'
import { BlockList, isIP, isIPv4 } from 'node:net'

/** `trustProxy` as given: addresses and CIDRs (`loopback` for 127.0.0.0/8 and ::1), or hops. */
export type TrustProxy = readonly string[] | number | null

/** `trustProxy` resolved: a matcher for the trusted peers, or a hop count. */
export type ResolvedTrustProxy =
  | { readonly kind: 'list'; readonly entries: readonly string[]; readonly list: BlockList }
  | { readonly kind: 'hops'; readonly hops: number }
  | null

const expected =
  "Expected `trustProxy` to be a list of addresses or CIDRs (e.g. ['loopback', '10.0.0.0/8']), a positive hop count, or null"

/** `::ffff:10.1.2.3` (an IPv4 peer of a dual-stack socket) as `10.1.2.3`; anything else as is. */
function plain(address: string): string {
  if (address.length > 7 && address.slice(0, 7).toLowerCase() === '::ffff:') {
    const v4 = address.slice(7)
    if (isIPv4(v4)) return v4
  }
  return address
}

function addEntry(list: BlockList, entry: string): void {
  if (entry === 'loopback') {
    list.addSubnet('127.0.0.0', 8, 'ipv4')
    list.addAddress('::1', 'ipv6')
    return
  }
  const slash = entry.indexOf('/')
  const address = plain(slash === -1 ? entry : entry.slice(0, slash))
  const family = isIP(address)
  if (family === 0)
    throw new TypeError(`${expected}; ${JSON.stringify(entry)} is not an address or CIDR`)
  const type = family === 4 ? 'ipv4' : 'ipv6'
  if (slash === -1) {
    list.addAddress(address, type)
    return
  }
  const bits = entry.slice(slash + 1)
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128))
    throw new TypeError(`${expected}; ${JSON.stringify(entry)} has a bad prefix length`)
  list.addSubnet(address, Number(bits), type)
}

/**
 * Validates `trustProxy`. A hop count is a positive integer, or a list of one numeric entry (as
 * `--trust-proxy 1` gives it).
 * @throws {TypeError} naming `trustProxy`.
 */
export function resolveTrustProxy(value: unknown): ResolvedTrustProxy {
  if (value === null) return null
  if (
    Array.isArray(value) &&
    value.length === 1 &&
    typeof value[0] === 'string' &&
    /^\d+$/.test(value[0])
  )
    return resolveTrustProxy(Number(value[0]))
  if (typeof value === 'number') {
    if (Number.isSafeInteger(value) && value > 0) return { kind: 'hops', hops: value }
    throw new TypeError(`${expected}, got \`${String(value)}\` (number)`)
  }
  if (!Array.isArray(value) || !value.every((entry) => typeof entry === 'string'))
    throw new TypeError(`${expected}, got ${JSON.stringify(value)}`)
  if (value.length === 0) return null
  const list = new BlockList()
  for (const entry of value) addEntry(list, entry.trim())
  return { kind: 'list', entries: value, list }
}

function trusted(list: BlockList, address: string): boolean {
  const bare = plain(address)
  const family = isIP(bare)
  return family !== 0 && list.check(bare, family === 4 ? 'ipv4' : 'ipv6')
}

/** One address of a header, without port, brackets or quotes; `null` when it is not an address. */
function addressOf(raw: string): string | null {
  let text = raw.trim()
  if (text.length > 1 && text.startsWith('"') && text.endsWith('"')) text = text.slice(1, -1)
  if (text.startsWith('[')) {
    // [v6] or [v6]:port
    const close = text.indexOf(']')
    if (close === -1) return null
    const rest = text.slice(close + 1)
    if (rest !== '' && !/^:\d{1,5}$/.test(rest)) return null
    text = text.slice(1, close)
    return isIP(text) === 6 ? text : null
  }
  if (isIP(text) !== 0) return text
  // v4:port
  const colon = text.lastIndexOf(':')
  if (colon !== -1 && /^\d{1,5}$/.test(text.slice(colon + 1))) {
    const host = text.slice(0, colon)
    if (isIPv4(host)) return host
  }
  return null
}

/** The `for=` addresses of a `Forwarded` header, in order; `null` when it is malformed. */
function forwardedFor(header: string): string[] | null {
  const found: string[] = []
  for (const element of header.split(',')) {
    let value: string | null = null
    for (const pair of element.split(';')) {
      const eq = pair.indexOf('=')
      if (eq === -1) {
        if (pair.trim() === '') continue
        return null
      }
      if (pair.slice(0, eq).trim().toLowerCase() === 'for') value = pair.slice(eq + 1)
    }
    if (value === null) return null
    const address = addressOf(value)
    if (address === null) return null
    found.push(address)
  }
  return found
}

/** The `X-Forwarded-For` addresses, in order; `null` when one is not an address. */
function xForwardedFor(header: string): string[] | null {
  const found: string[] = []
  for (const item of header.split(',')) {
    const address = addressOf(item)
    if (address === null) return null
    found.push(address)
  }
  return found
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value
}

/**
 * The client's address of a request from `peer` with `headers`, under `trust`. `Forwarded` is read
 * when present, else `X-Forwarded-For`. With no trust, or an untrusted peer, or a malformed or
 * absent header: `peer`.
 */
export function clientAddress(
  trust: ResolvedTrustProxy,
  peer: string | undefined,
  headers: IncomingHttpHeaders,
): string | undefined {
  if (trust === null || peer === undefined) return peer
  if (trust.kind === 'list' && !trusted(trust.list, peer)) return peer
  const forwarded = headerText(headers.forwarded)
  const xff = headerText(headers['x-forwarded-for'])
  const chain =
    forwarded !== undefined
      ? forwardedFor(forwarded)
      : xff !== undefined
        ? xForwardedFor(xff)
        : null
  if (chain === null || chain.length === 0) return peer
  if (trust.kind === 'hops') {
    // The peer is hop 1; each further hop trusted moves one entry left. Past the list: its first.
    return chain[Math.max(0, chain.length - trust.hops)]
  }
  for (let at = chain.length - 1; at >= 0; at--) {
    if (!trusted(trust.list, chain[at]!)) return chain[at]
  }
  // Every address is a trusted proxy's: the farthest one is the best we know.
  return chain[0]
}
