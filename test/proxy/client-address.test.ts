/**
 * `trustProxy`: which peers' forwarding headers are believed, and which address they name. Pure
 * unit tests of src/server/client-address.ts, then the option's validation through
 * `resolveServerOptions`, and one hub per front to show the per-IP limit and `/clients` use it.
 */
import { connect } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { clientAddress, resolveTrustProxy } from '../../src/server/client-address.js'
import { resolveServerOptions } from '../../src/server/server-options.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'

const at = (
  trust: unknown,
  peer: string | undefined,
  headers: Record<string, string | string[]>,
): string | undefined => clientAddress(resolveTrustProxy(trust), peer, headers)

describe('clientAddress', () => {
  it('keeps the peer address with no trusted proxy, whatever the headers say', () => {
    expect(at(null, '198.51.100.9', { 'x-forwarded-for': '203.0.113.1' })).toBe('198.51.100.9')
    expect(at([], '198.51.100.9', { 'x-forwarded-for': '203.0.113.1' })).toBe('198.51.100.9')
  })

  it('believes only the trusted peers', () => {
    const headers = { 'x-forwarded-for': '203.0.113.1' }
    expect(at(['10.0.0.0/8'], '10.1.2.3', headers)).toBe('203.0.113.1')
    expect(at(['10.0.0.0/8'], '11.1.2.3', headers)).toBe('11.1.2.3')
  })

  it('walks X-Forwarded-For from the right, skipping trusted addresses', () => {
    const headers = { 'x-forwarded-for': '6.6.6.6, 203.0.113.1, 10.0.0.2, 127.0.0.1' }
    // 6.6.6.6 is what the client wrote itself: never believed past the first untrusted hop.
    expect(at(['loopback', '10.0.0.0/8'], '127.0.0.1', headers)).toBe('203.0.113.1')
    expect(at(['loopback'], '127.0.0.1', headers)).toBe('10.0.0.2')
  })

  it('gives the farthest address when every hop is trusted', () => {
    expect(at(['10.0.0.0/8'], '10.0.0.1', { 'x-forwarded-for': '10.0.0.9, 10.0.0.8' })).toBe(
      '10.0.0.9',
    )
  })

  it('counts hops from the peer', () => {
    const headers = { 'x-forwarded-for': '203.0.113.1, 198.51.100.2, 10.0.0.2' }
    expect(at(1, '10.0.0.1', headers)).toBe('10.0.0.2')
    expect(at(2, '10.0.0.1', headers)).toBe('198.51.100.2')
    expect(at(['3'], '10.0.0.1', headers)).toBe('203.0.113.1')
    expect(at(9, '10.0.0.1', headers)).toBe('203.0.113.1')
  })

  it('reads RFC 7239 Forwarded (quoted, IPv6 in brackets, ports) before X-Forwarded-For', () => {
    const headers = {
      forwarded: 'for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"',
      'x-forwarded-for': '198.51.100.7',
    }
    expect(at(['loopback'], '127.0.0.1', headers)).toBe('2001:db8:cafe::17')
    expect(at(['loopback', '2001:db8::/32'], '::1', headers)).toBe('192.0.2.60')
    expect(at(['loopback'], '127.0.0.1', { forwarded: 'For="192.0.2.61:8080"' })).toBe('192.0.2.61')
  })

  it('falls back to the peer address on a malformed or absent header', () => {
    for (const headers of [
      {},
      { 'x-forwarded-for': '' },
      { 'x-forwarded-for': 'not-an-ip' },
      { 'x-forwarded-for': '203.0.113.1,, 10.0.0.1' },
      { 'x-forwarded-for': '203.0.113.1; drop table' },
      { forwarded: 'for=unknown' },
      { forwarded: 'for=_hidden' },
      { forwarded: 'proto=https' },
      { forwarded: 'for="[2001:db8::1"' },
    ]) {
      expect(at(['loopback'], '127.0.0.1', headers), JSON.stringify(headers)).toBe('127.0.0.1')
    }
  })

  it('matches IPv4 peers of a dual-stack socket and the IPv6 loopback', () => {
    const headers = { 'x-forwarded-for': '203.0.113.1' }
    expect(at(['127.0.0.1'], '::ffff:127.0.0.1', headers)).toBe('203.0.113.1')
    expect(at(['loopback'], '::1', headers)).toBe('203.0.113.1')
    expect(at(['::ffff:10.0.0.1'], '10.0.0.1', headers)).toBe('203.0.113.1')
  })

  it('joins repeated header lines in order', () => {
    expect(
      at(['loopback'], '127.0.0.1', { 'x-forwarded-for': ['203.0.113.1', '198.51.100.2'] }),
    ).toBe('198.51.100.2')
  })
})

describe('the trustProxy option', () => {
  it.each([
    [['10.0.0.0/33'], /`trustProxy`.*bad prefix length/],
    [['example.com'], /`trustProxy`.*"example.com" is not an address or CIDR/],
    [[''], /`trustProxy`/],
    [0, /Expected `trustProxy`.*got `0` \(number\)/],
    [1.5, /`trustProxy`/],
    ['loopback', /`trustProxy`/],
    [[1], /`trustProxy`/],
  ])('refuses %j up front, naming the option', (value, message) => {
    expect(() => resolveServerOptions({ trustProxy: value as never })).toThrow(message)
  })

  it('is off by default', () => {
    expect(resolveServerOptions({}).trustProxy).toBeNull()
  })
})

describe.each(['fast', 'node'] as const)('behind a trusted proxy, on the %s front', (front) => {
  let hub: TestHub | undefined
  afterEach(async () => {
    await hub?.close()
    hub = undefined
  })

  const open = (url: string, forwarded: string): Promise<Response> =>
    fetch(`${url}/events?topic=t`, { headers: { 'x-forwarded-for': forwarded } })

  it('applies the per-IP limit to the forwarded address and lists it in /clients', async () => {
    hub = await startHub({
      fastPath: front === 'fast',
      trustProxy: ['loopback'],
      maxConnectionsPerIp: 2,
    })
    const a1 = await open(hub.url, '203.0.113.1')
    const a2 = await open(hub.url, '203.0.113.1')
    const a3 = await open(hub.url, '203.0.113.1')
    const b1 = await open(hub.url, '203.0.113.2, 127.0.0.1')
    expect([a1.status, a2.status, a3.status, b1.status]).toEqual([200, 200, 429, 200])
    const listed = (await (await fetch(`${hub.url}/clients`)).json()) as {
      connections: { remoteAddress: string }[]
    }
    expect(listed.connections.map((c) => c.remoteAddress).sort()).toEqual([
      '203.0.113.1',
      '203.0.113.1',
      '203.0.113.2',
    ])
    for (const response of [a1, a2, b1]) await response.body?.cancel()
  })

  it('reads repeated X-Forwarded-For lines as one list (hop counting: the same client)', async () => {
    hub = await startHub({ fastPath: front === 'fast', trustProxy: 2 })
    // Two lines, as two proxies that each add one send them. Hop 2 is 203.0.113.7; reading only
    // the first line would give 6.6.6.6, only the last 198.51.100.2.
    const socket = connect(Number(new URL(hub.url).port), '127.0.0.1')
    let received = ''
    socket.setEncoding('latin1').on('data', (chunk: string) => (received += chunk))
    socket.write(
      'GET /events?topic=t HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6, 203.0.113.7\r\n' +
        'X-Forwarded-For: 198.51.100.2\r\n\r\n',
    )
    try {
      await waitFor(() => received.includes('\r\n\r\n'), 'the stream to open')
      // The fast front wrote the head itself (lower-case names): it took the request.
      expect(/\r\ndate: /.test(received)).toBe(front === 'fast')
      const listed = (await (await fetch(`${hub.url}/clients`)).json()) as {
        connections: { remoteAddress: string }[]
      }
      expect(listed.connections.map((c) => c.remoteAddress)).toEqual(['203.0.113.7'])
    } finally {
      socket.destroy()
    }
  })
})
