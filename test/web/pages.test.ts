import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
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

async function open(path: string, options: Parameters<typeof startHub>[0] = {}): Promise<Page> {
  hub = await startHub({ mockTokenDelayMs: 30, ...options })
  page = await browser.newPage()
  await page.goto(hub.url + path)
  return page
}

describe('dashboard and demos in Chromium', () => {
  it('the dashboard goes live over SSE and its inspector shows a published event', async () => {
    const p = await open('/')
    await p.locator('#state', { hasText: 'live' }).waitFor({ timeout: 5000 })
    await p.fill('#watchTopics', 'news')
    await p.click('#watch button')
    await expect.poll(() => hub!.server.hub.subscriberCount('news'), { timeout: 5000 }).toBe(1)
    await p.fill('#to', 'news')
    await p.fill('#data', 'hello from the form')
    await p.click('#publish button')
    await p.locator('#log', { hasText: 'hello from the form' }).waitFor({ timeout: 5000 })
    await p.locator('#topics', { hasText: 'news' }).waitFor({ timeout: 5000 })
    await p.screenshot({ path: join(SCREENSHOTS, 'dashboard.png'), fullPage: true })
  })

  it('the dashboard asks for the key on a hub with one, and goes live once it is entered', async () => {
    const p = await open('/', { publishKey: 'k'.repeat(32) })
    await p.locator('#login').waitFor({ state: 'visible', timeout: 5000 })
    await p.fill('#key', 'k'.repeat(32))
    await p.click('#login button')
    await p.locator('#state', { hasText: 'live' }).waitFor({ timeout: 5000 })
    expect(p.url()).not.toContain('k'.repeat(32))
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
        llmUrl: `http://127.0.0.1:${port}`,
        llmKey: 'sk-test',
        llmModel: 'fake-model',
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

  it('the chat demo Stop button cancels the generation', async () => {
    const p = await open('/demo/chat', { mockTokenDelayMs: 200 })
    await p.click('#ask')
    await p.locator('#status', { hasText: 'streaming' }).waitFor({ timeout: 5000 })
    await p.click('#stop')
    await p
      .locator('#status', { hasText: 'error: The relay was aborted.' })
      .waitFor({ timeout: 5000 })
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
