import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { MOCK_ANSWER, mockUpstream } from '../../src/relay/index.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { launchChromium, SCREENSHOTS } from './browser.js'

let chromium: Awaited<ReturnType<typeof launchChromium>>
let browser: Browser
let hub: TestHub | undefined
let page: Page | undefined

beforeAll(async () => {
  chromium = await launchChromium()
  browser = chromium.browser
})
afterAll(async () => {
  await chromium?.close()
})
afterEach(async () => {
  await page?.close()
  page = undefined
  await hub?.close()
  hub = undefined
})

/** How many pixels the chart's lines span across, read from the canvas. */
async function chartSpan(p: Page): Promise<number> {
  return p.evaluate(() => {
    const canvas = document.getElementById('chart') as HTMLCanvasElement
    const { data, width, height } = canvas
      .getContext('2d')!
      .getImageData(0, 0, canvas.width, canvas.height)
    let min = width
    let max = -1
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 4
        // The blue and orange lines; not the grey grid or labels.
        if (data[i + 3]! > 200 && Math.abs(data[i]! - data[i + 2]!) > 100) {
          min = Math.min(min, x)
          max = Math.max(max, x)
        }
      }
    }
    return max - min
  })
}

/** The chat demo's upstream `default`: the mock model at `tokenDelayMs`, as `ssehub serve` sets it. */
const mock = (tokenDelayMs: number): Parameters<typeof startHub>[0] => ({
  relayUpstreams: { default: mockUpstream({ tokenDelayMs }) },
})

async function open(path: string, options: Parameters<typeof startHub>[0] = {}): Promise<Page> {
  hub = await startHub({ ...mock(30), ...options })
  page = await browser.newPage()
  await page.goto(hub.url + path)
  return page
}

describe('dashboard and demos in Chromium', () => {
  it('the dashboard goes live over SSE; its inspector shows every event, whatever its name', async () => {
    const p = await open('/')
    await p.locator('#state', { hasText: 'live' }).waitFor({ timeout: 5000 })
    await p.fill('#watchTopics', 'news')
    await p.click('#watch button')
    await expect.poll(() => hub!.server.hub.subscriberCount('news'), { timeout: 5000 }).toBe(1)
    await p.locator('#watchState', { hasText: 'watching news' }).waitFor({ timeout: 5000 })
    await p.fill('#to', 'news')
    await p.fill('#data', 'hello from the form')
    await p.click('#publish button')
    await p.locator('#log', { hasText: 'hello from the form' }).waitFor({ timeout: 5000 })
    // A name no list foresaw: EventSource would dispatch it only to a 'headline' listener.
    const { json } = await hub!.publish({ topic: 'news', event: 'headline', data: 'Big news' })
    await p
      .locator('#log', { hasText: `#${json.id}  headline  Big news` })
      .waitFor({ timeout: 5000 })
    expect(await p.locator('#log > div').allTextContents()).toEqual([
      expect.stringMatching(/ {2}headline {2}Big news$/),
      expect.stringMatching(/ {2}message {2}hello from the form$/),
    ])
    await p.locator('#topics', { hasText: 'news' }).waitFor({ timeout: 5000 })
    await p.screenshot({ path: join(SCREENSHOTS, 'dashboard.png'), fullPage: true })
  })

  it('the events/s chart spans its width from the first second', async () => {
    const p = await open('/')
    await p.locator('#state', { hasText: 'live' }).waitFor({ timeout: 5000 })
    // The x axis is the data so far: after the first rate (two snapshots, ~1 s) the lines run
    // across the chart, where a fixed 5-minute axis drew 1/300 of it.
    await expect.poll(() => chartSpan(p), { timeout: 5000 }).toBeGreaterThan(900)
    expect(await p.textContent('#window')).toMatch(/^\((the last second|last \d+ s)\)$/)
  })

  it('the dashboard asks for the key, says when one is refused, and goes live with the right one', async () => {
    const key = 'k'.repeat(32)
    const p = await open('/', { publishKey: key })
    const urls: string[] = []
    const tickets: Array<string | undefined> = []
    p.on('request', (r) => {
      urls.push(r.url())
      if (r.url().endsWith('/dashboard/ticket')) tickets.push(r.headers().authorization)
    })
    await p.locator('#login').waitFor({ state: 'visible', timeout: 5000 })
    expect(await p.textContent('#state')).toBe('needs the publish key')
    expect(await p.textContent('#refused')).toBe('')
    await p.fill('#key', 'not-the-key')
    await p.click('#login button')
    await p
      .locator('#refused', { hasText: 'This key was refused (401)' })
      .waitFor({ timeout: 5000 })
    expect(await p.evaluate(() => sessionStorage.getItem('ssehub.key'))).toBeNull()
    await p.fill('#key', key)
    await p.click('#login button')
    await p.locator('#state', { hasText: 'live' }).waitFor({ timeout: 5000 })
    expect(await p.textContent('#refused')).toBe('')
    expect(await p.locator('#login').isHidden()).toBe(true)
    // The key went in headers only; the feed URL carried a ticket.
    expect(tickets).toEqual(['Bearer not-the-key', `Bearer ${key}`])
    expect(urls.filter((url) => url.includes(key))).toEqual([])
    expect(urls.filter((url) => url.includes('/dashboard/events'))).toEqual([
      expect.stringMatching(/\/dashboard\/events\?ticket=[\w-]{43}$/),
    ])
    expect(p.url()).not.toContain(key)
  })

  it('the chat demo shows the mock model answer arriving token by token', async () => {
    const p = await open('/demo/chat')
    await p.click('#ask')
    // Progressive: some text shows while the stream is still running, then the whole answer.
    await p.locator('#status', { hasText: 'streaming' }).waitFor({ timeout: 5000 })
    const partial = await p.textContent('#answer')
    await p.locator('#status', { hasText: 'done' }).waitFor({ timeout: 15000 })
    const full = await p.textContent('#answer')
    expect(partial!.length).toBeLessThan(full!.length)
    expect(full).toContain('Server-Sent Events let a server push text')
    await p.screenshot({ path: join(SCREENSHOTS, 'chat.png'), fullPage: true })
  })

  it('the chat demo relays a local OpenAI-compatible upstream token by token', async () => {
    // A fake upstream: streams chunks of the answer, then [DONE]; one chunk per 40 ms.
    const words = 'Streamed from the fake upstream, one chunk at a time.'.split(' ')
    const requests: unknown[] = []
    const upstream: Server = createServer((req, res) => {
      let body = ''
      req.on('data', (chunk: Buffer) => (body += chunk.toString()))
      req.on('end', () => {
        requests.push({ url: req.url, auth: req.headers.authorization, body: JSON.parse(body) })
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        let i = 0
        const timer = setInterval(() => {
          const word = words[i++]
          if (word === undefined) {
            clearInterval(timer)
            res.end('data: [DONE]\n\n')
            return
          }
          const delta = { content: (i > 1 ? ' ' : '') + word }
          res.write(
            `data: ${JSON.stringify({ choices: [{ index: 0, delta, finish_reason: null }] })}\n\n`,
          )
        }, 40)
        res.on('close', () => clearInterval(timer))
      })
    })
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve))
    try {
      const { port } = upstream.address() as AddressInfo
      const p = await open('/demo/chat', {
        relayUpstreams: {
          default: { url: `http://127.0.0.1:${port}`, apiKey: 'sk-test', model: 'fake-model' },
        },
      })
      await p.click('#ask')
      await p.locator('#status', { hasText: 'streaming' }).waitFor({ timeout: 5000 })
      const partial = await p.textContent('#answer')
      await p.locator('#status', { hasText: 'done' }).waitFor({ timeout: 10000 })
      expect(partial!.length).toBeLessThan(words.join(' ').length)
      expect(await p.textContent('#answer')).toBe(words.join(' '))
      expect(requests).toMatchObject([
        {
          url: '/v1/chat/completions',
          auth: 'Bearer sk-test',
          body: { model: 'fake-model', stream: true },
        },
      ])
    } finally {
      upstream.closeAllConnections()
      await new Promise((resolve) => upstream.close(resolve))
    }
  })

  it('the chat demo refreshed mid-answer shows the whole answer; a second tab joins the same generation', async () => {
    const p = await open('/demo/chat', mock(40))
    const starts: string[] = []
    p.on('request', (r) => {
      if (r.url().endsWith('/relays')) starts.push(r.postData() ?? '')
    })
    await p.click('#ask')
    await p.locator('#status', { hasText: 'streaming' }).waitFor({ timeout: 5000 })
    const id = new URL(p.url()).searchParams.get('id')!
    // A second tab on the same link watches the same generation (nothing new is started).
    const second = await browser.newPage()
    try {
      await second.goto(p.url())
      await second.locator('#status', { hasText: 'streaming' }).waitFor({ timeout: 5000 })
      // Refresh the first tab mid-answer (some tokens out, not all).
      await expect
        .poll(async () => (await p.textContent('#answer'))!.length, { timeout: 5000 })
        .toBeGreaterThan(40)
      expect((await p.textContent('#answer'))!.length).toBeLessThan(MOCK_ANSWER.length)
      await p.reload()
      for (const tab of [p, second]) {
        await tab.locator('#status', { hasText: 'done' }).waitFor({ timeout: 15000 })
        expect(await tab.textContent('#answer')).toBe(MOCK_ANSWER)
      }
      expect(starts).toHaveLength(1)
      expect(JSON.parse(starts[0]!)).toMatchObject({ id, upstream: 'default' })
    } finally {
      await second.close()
    }
  })

  it('the chat demo: closing every tab does not stop the generation; Stop stops it for every tab', async () => {
    const p = await open('/demo/chat', mock(100))
    await p.click('#ask')
    await p.locator('#status', { hasText: 'streaming' }).waitFor({ timeout: 5000 })
    const link = p.url()
    const id = new URL(link).searchParams.get('id')!
    await p.close()
    page = undefined
    // No viewer left: the generation goes on (tokens keep arriving in the topic's history).
    const state = async (): Promise<{
      state: string
      lastEventId: string | null
      subscribers: number
    }> => (await fetch(`${hub!.url}/topics/${encodeURIComponent(`relay/${id}`)}`)).json() as never
    await expect.poll(async () => (await state()).subscribers, { timeout: 5000 }).toBe(0)
    const before = (await state()).lastEventId
    await expect.poll(async () => (await state()).lastEventId, { timeout: 5000 }).not.toBe(before)
    expect((await state()).state).toBe('open')
    // Two tabs again; Stop in one stops it in both.
    page = await browser.newPage()
    const other = await browser.newPage()
    try {
      await page.goto(link)
      await other.goto(link)
      for (const tab of [page, other])
        await tab.locator('#status', { hasText: 'streaming' }).waitFor({ timeout: 5000 })
      await page.click('#stop')
      for (const tab of [page, other]) {
        await tab
          .locator('#status', { hasText: `error: Stopped by POST /relays/${id}/abort.` })
          .waitFor({ timeout: 5000 })
      }
      expect((await state()).state).toBe('ended')
    } finally {
      await other.close()
    }
  })

  it('the progress demo reaches 100 % and its EventSource ends CLOSED with no retry loop', async () => {
    const p = await open('/demo/progress')
    const requests: string[] = []
    p.on('request', (r) => {
      if (r.url().includes('/events?')) requests.push(r.url())
    })
    await p.click('#start')
    await p.locator('#status', { hasText: 'stream closed' }).waitFor({ timeout: 10000 })
    expect(
      await p.evaluate(
        () => (window as unknown as { progressStream: EventSource }).progressStream.readyState,
      ),
    ).toBe(2)
    expect(await p.textContent('#status')).toContain('100 %')
    const count = requests.length
    // One stream, then at most the one reconnection the hub answers with 204.
    expect(count).toBeLessThanOrEqual(2)
    await p.screenshot({ path: join(SCREENSHOTS, 'progress.png'), fullPage: true })
  })

  it('the ticker demo pushes prices to every viewer', async () => {
    const p = await open('/demo/ticker')
    const second = await browser.newPage()
    try {
      await second.goto(hub!.url + '/demo/ticker')
      for (const viewer of [p, second]) {
        await viewer.locator('#prices', { hasText: 'ACME' }).waitFor({ timeout: 5000 })
      }
      await p.screenshot({ path: join(SCREENSHOTS, 'ticker.png'), fullPage: true })
    } finally {
      await second.close()
    }
  })
})
