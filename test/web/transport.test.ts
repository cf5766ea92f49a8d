import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createHub, type Hub } from '../../src/hub/hub.js'
import { createHubServer, type HubServer } from '../../src/server/server.js'
import { writeSelfSigned } from '../helpers/self-signed.js'
import { launchChromium, SCREENSHOTS } from './browser.js'

let chromium: Awaited<ReturnType<typeof launchChromium>>
let browser: Browser
let page: Page | undefined
const servers: HubServer[] = []
const hubs: Hub[] = []

beforeAll(async () => {
  chromium = await launchChromium(['--ignore-certificate-errors'])
  browser = chromium.browser
})
afterAll(async () => {
  await chromium?.close()
})
afterEach(async () => {
  await page?.close()
  page = undefined
  for (const server of servers.splice(0)) await server.close()
  for (const hub of hubs.splice(0)) await hub.close()
})

/** A self-signed certificate for localhost, made for this run. */
function selfSigned(): { cert: string; key: string } {
  const dir = mkdtempSync(join(tmpdir(), 'ssehub-cert-'))
  try {
    const files = writeSelfSigned(dir)
    return {
      cert: readFileSync(files.cert, 'utf8'),
      key: readFileSync(files.key, 'utf8'),
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

interface Received {
  readonly got: Record<string, string[]>
  readonly open: number
}

describe('browser transport', () => {
  it('holds 10 EventSources over one HTTP/2 connection and receives on all of them', async () => {
    const { cert, key } = selfSigned()
    const server = createHubServer({ heartbeatMs: null, tlsCert: cert, tlsKey: key })
    servers.push(server)
    const versions: string[] = []
    server.http2Server!.on('request', (req: { httpVersion: string }) =>
      versions.push(req.httpVersion),
    )
    const { port } = await server.listen(0, '127.0.0.1')
    page = await browser.newPage()
    await page.goto(`https://localhost:${port}/demo/ticker`)
    await page.evaluate(() => {
      const state = { got: {} as Record<string, string[]>, open: 0 }
      ;(window as unknown as { received: typeof state }).received = state
      for (let i = 0; i < 10; i++) {
        const es = new EventSource(`/events?topic=t${i}`)
        state.got[`t${i}`] = []
        es.onopen = () => (state.open += 1)
        es.onmessage = (e: MessageEvent<string>) => state.got[`t${i}`]!.push(e.data)
      }
    })
    const received = (): Promise<Received> =>
      page!.evaluate(() => (window as unknown as { received: Received }).received)
    await expect.poll(async () => (await received()).open, { timeout: 10_000 }).toBe(10)
    for (let i = 0; i < 10; i++) await server.hub.publish({ topic: `t${i}`, data: `hello ${i}` })
    await expect
      .poll(
        async () => Object.values((await received()).got).filter((l) => l.length === 1).length,
        {
          timeout: 10_000,
        },
      )
      .toBe(10)
    expect((await received()).got.t7).toEqual(['hello 7'])
    // Over HTTP/1.1 the browser would hold six at most; every request here was HTTP/2.
    expect(new Set(versions)).toEqual(new Set(['2.0']))
    const protocol = await page.evaluate(
      () =>
        (performance.getEntriesByType('navigation')[0] as PerformanceNavigationTiming)
          .nextHopProtocol,
    )
    expect(protocol).toBe('h2')
    await page.screenshot({ path: join(SCREENSHOTS, 'http2.png') })
  })

  it('reconnects after a hub server restart with Last-Event-ID and loses no event', async () => {
    // The hub (and its history) outlives its HTTP server, as it would with the Redis broker.
    const hub = createHub({ heartbeatMs: null })
    hubs.push(hub)
    let server = createHubServer({ hub })
    servers.push(server)
    const { port } = await server.listen(0, '127.0.0.1')
    // Every stream request reaches Hub.attach with its resume id, whichever path took it.
    const lastEventIds: Array<string | undefined> = []
    const attach = hub.attach.bind(hub)
    hub.attach = (transport, params) => {
      lastEventIds.push(params.lastEventId)
      return attach(transport, params)
    }
    page = await browser.newPage()
    await page.goto(`http://127.0.0.1:${port}/demo/ticker`)
    await page.evaluate(() => {
      const got: string[] = []
      ;(window as unknown as { got: string[] }).got = got
      const es = new EventSource('/events?topic=feed')
      es.onmessage = (e: MessageEvent<string>) => got.push(e.data)
    })
    const got = (): Promise<string[]> =>
      page!.evaluate(() => (window as unknown as { got: string[] }).got)
    await expect.poll(() => hub.subscriberCount('feed'), { timeout: 5000 }).toBe(1)
    await hub.publish({ topic: 'feed', data: '1' })
    await hub.publish({ topic: 'feed', data: '2' })
    await expect.poll(got, { timeout: 5000 }).toEqual(['1', '2'])

    await server.close()
    // Published while the server is down: the browser must get them on reconnection.
    await hub.publish({ topic: 'feed', data: '3' })
    await hub.publish({ topic: 'feed', data: '4' })
    server = createHubServer({ hub })
    servers.push(server)
    await server.listen(port, '127.0.0.1')
    await expect.poll(got, { timeout: 15_000 }).toEqual(['1', '2', '3', '4'])
    await hub.publish({ topic: 'feed', data: '5' })
    await expect.poll(got, { timeout: 5000 }).toEqual(['1', '2', '3', '4', '5'])
    expect(lastEventIds[0]).toBeUndefined()
    expect(lastEventIds.at(-1)).toMatch(/\S/)
  })
})
