import type { Browser, Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startCliHub, type CliProcess } from '../helpers/cli.js'
import { freePort, startRedis, type TestRedis } from '../helpers/redis-server.js'
import { launchChromium } from './browser.js'

let chromium: Awaited<ReturnType<typeof launchChromium>>
let browser: Browser
let redis: TestRedis
const processes: CliProcess[] = []

beforeAll(async () => {
  chromium = await launchChromium()
  browser = chromium.browser
  redis = await startRedis()
})
afterAll(async () => {
  for (const cli of processes)
    if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL')
  await chromium?.close()
  await redis?.stop()
})

describe('a real hub process restart (Redis broker)', () => {
  it('kill -9 of the hub the page talks to: the browser reconnects with Last-Event-ID and loses no event', async () => {
    const port = await freePort()
    const args = ['--redis', redis.url, '--redis-prefix', 'restart:{h}:', '--retry-ms', '200']
    const node = await startCliHub([...args, '--port', String(port)])
    processes.push(node.cli)
    // A second node publishes while the first is down (a load balancer would route there).
    const other = await startCliHub(args)
    processes.push(other.cli)
    const publish = async (url: string, data: string): Promise<void> => {
      const response = await fetch(`${url}/publish`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ topic: 'feed', data }),
      })
      expect(response.status).toBe(200)
    }
    const page: Page = await browser.newPage()
    try {
      await page.goto(`${node.url}/demo/ticker`)
      await page.evaluate(() => {
        const w = window as unknown as { got: string[]; ids: string[] }
        w.got = []
        w.ids = []
        const es = new EventSource('/events?topic=feed')
        es.onmessage = (e: MessageEvent<string>) => {
          w.got.push(e.data)
          w.ids.push(e.lastEventId)
        }
      })
      const got = (): Promise<string[]> =>
        page.evaluate(() => (window as unknown as { got: string[] }).got)
      await expect
        .poll(
          async () =>
            ((await (await fetch(`${node.url}/topics/feed`)).json()) as { subscribers: number })
              .subscribers,
          { timeout: 5000 },
        )
        .toBe(1)
      await publish(node.url, '1')
      await publish(other.url, '2')
      await expect.poll(got, { timeout: 5000 }).toEqual(['1', '2'])

      node.cli.child.kill('SIGKILL')
      await node.cli.exited
      await publish(other.url, '3')
      await publish(other.url, '4')
      // The same process command on the same port: the page's EventSource reconnects by itself.
      const again = await startCliHub([...args, '--port', String(port)])
      processes.push(again.cli)
      await expect.poll(got, { timeout: 15_000 }).toEqual(['1', '2', '3', '4'])
      await publish(other.url, '5')
      await expect.poll(got, { timeout: 5000 }).toEqual(['1', '2', '3', '4', '5'])
      const ids = await page.evaluate(() => (window as unknown as { ids: string[] }).ids)
      expect(new Set(ids).size).toBe(5)
      for (const id of ids) expect(id).toMatch(/^1~0\.[0-9a-z]+\.\d+-\d+$/)
    } finally {
      await page.close()
    }
  }, 60_000)
})
