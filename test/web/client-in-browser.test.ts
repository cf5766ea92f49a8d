import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join, relative } from 'node:path'
import type { Browser, Page } from 'playwright-core'
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest'
import type * as Client from '../../src/client/index.js'
import { deadUrl } from '../client/track.js'
import { clientSources, distDir, ensureClientBuilt, repoRoot } from '../helpers/built-client.js'
import { startHub, type TestHub } from '../helpers/hub-server.js'
import { waitFor } from '../helpers/wait.js'
import { launchChromium } from './browser.js'

/**
 * `ssehub/client` in Chromium as it ships: the built files of `dist/` served in the package's
 * layout (`/node_modules/ssehub/dist/...`, `text/javascript`), imported by a page as ES modules
 * through an import map, with no bundler, against a real hub on another origin. Every scenario
 * runs in the page (`page.evaluate`) and asserts exact event sequences; `EventSource` is checked
 * against the browser's own on the same streams.
 *
 * The built files: `npm test` runs `npm run build` first. Run alone, this suite rebuilds the
 * client's files when they are missing or older than src/ (test/helpers/built-client.ts).
 */

/** What the page keeps on `window`. */
interface PageGlobals {
  ssehub: typeof Client
  logs: Record<string, string[]>
  handles: Record<string, { close(): void }>
  controllers: Record<string, AbortController>
}

const html = `<!doctype html>
<meta charset="utf-8">
<title>ssehub/client as shipped</title>
<script type="importmap">{"imports":{"ssehub/client":"/node_modules/ssehub/dist/client/index.js"}}</script>
<script type="module">
  import * as ssehub from 'ssehub/client'
  Object.assign(window, { ssehub, logs: {}, handles: {}, controllers: {} })
</script>
`

/** The page's origin: the page, the package's files, and two routes of its own. */
interface PageServer {
  readonly url: string
  /** Paths under /node_modules/ssehub/ the browser asked for, with the status answered. */
  readonly files: Map<string, number>
  /** `Last-Event-ID` of each request to /utf8-id, in hex; `-` when absent. */
  readonly utf8IdHeaders: string[]
  close(): Promise<void>
}

async function startPageServer(): Promise<PageServer> {
  const files = new Map<string, number>()
  const utf8IdHeaders: string[] = []
  const server: Server = createServer((req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost')
      const chunks: Buffer[] = []
      for await (const chunk of req) chunks.push(chunk as Buffer)
      const body = Buffer.concat(chunks).toString('utf8')
      if (url.pathname === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(html)
      } else if (url.pathname.startsWith('/node_modules/ssehub/dist/')) {
        const rel = url.pathname.slice('/node_modules/ssehub/dist/'.length)
        const file = join(distDir, rel)
        const inside = !relative(distDir, file).startsWith('..')
        const text = inside && rel.endsWith('.js') ? await readFile(file).catch(() => null) : null
        files.set(`dist/${rel}`, text === null ? 404 : 200)
        if (text === null) res.writeHead(404).end()
        else res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(text)
      } else if (url.pathname === '/echo') {
        // One event with what the request carried, then the end.
        const echo = {
          method: req.method,
          custom: req.headers['x-custom'] ?? null,
          contentType: req.headers['content-type'] ?? null,
          accept: req.headers.accept ?? null,
          body,
        }
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        res.end(`data: ${JSON.stringify(echo)}\n\n`)
      } else if (url.pathname === '/utf8-id') {
        // WPT last-event-id.py: `id: …` (beyond Latin-1); a request with `Last-Event-ID` gets its
        // bytes back as data.
        const raw = req.headers['last-event-id']
        const bytes = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : undefined
        utf8IdHeaders.push(bytes?.toString('hex') ?? '-')
        res.writeHead(200, { 'content-type': 'text/event-stream' })
        if (bytes === undefined) res.end('id: \u2026\nretry: 50\ndata: hello\n\n')
        else res.end(Buffer.concat([Buffer.from('data: '), bytes, Buffer.from('\n\n')]))
      } else {
        res.writeHead(404).end()
      }
    })()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    files,
    utf8IdHeaders,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

let chromium: Awaited<ReturnType<typeof launchChromium>>
let browser: Browser
let pages: PageServer
let page: Page
let hub: TestHub
/** The current hub's origin ('' between tests: the page's own requests are not the hub's). */
let hubUrl = ''
let pageErrors: string[] = []
/** GET requests the browser made to the hub's /events: `topic last-event-id` (`-`: none). */
let hubRequests: Promise<string>[] = []

beforeAll(async () => {
  ensureClientBuilt()
  pages = await startPageServer()
  chromium = await launchChromium()
  browser = chromium.browser
  // One page for the suite (a page and its module graph cost most of a second): each test starts
  // from empty logs and closes what it opened.
  page = await browser.newPage()
  page.on('pageerror', (error) => pageErrors.push(error.message))
  page.on('request', (request) => {
    const url = new URL(request.url())
    if (request.method() !== 'GET' || url.origin !== hubUrl || url.pathname !== '/events') return
    // allHeaders(): the headers as sent, those the network stack adds (the browser
    // EventSource's Last-Event-ID) included.
    hubRequests.push(
      request
        .allHeaders()
        .then((headers) => `${url.searchParams.get('topic')} ${headers['last-event-id'] ?? '-'}`),
    )
  })
  await page.goto(`${pages.url}/`)
  await page.waitForFunction(() => 'ssehub' in window, undefined, { timeout: 5_000 })
}, 60_000)

afterAll(async () => {
  await chromium?.close()
  await pages?.close()
})

beforeEach(async () => {
  pageErrors = []
  hubRequests = []
  // The hub sends `retry: 500`: reconnections are quick, and a dropped client stays away long
  // enough for the test to publish what it must replay.
  hub = await startHub({ corsOrigins: '*', retryMs: 500 })
  hubUrl = hub.url
})

afterEach(async () => {
  await page.evaluate(() => {
    const w = window as unknown as PageGlobals
    for (const handle of Object.values(w.handles)) handle.close()
    for (const controller of Object.values(w.controllers)) controller.abort()
    Object.assign(w, { logs: {}, handles: {}, controllers: {} })
  })
  hubUrl = ''
  await hub.close()
  expect(pageErrors).toEqual([])
})

const logOf = (name: string): Promise<string[]> =>
  page.evaluate((n) => (window as unknown as PageGlobals).logs[n] ?? [], name)

async function waitForLog(name: string, length: number): Promise<string[]> {
  return waitFor(async () => {
    const log = await logOf(name)
    return log.length >= length ? log : undefined
  }, `${length} entries in the page's ${name} log`)
}

async function publish(body: Record<string, unknown>): Promise<string> {
  const { status, json } = await hub.publish(body)
  expect(status).toBe(200)
  return (json as { id: string }).id
}

/** Opens our EventSource and the browser's on `url`, each logging to its own name. */
async function openBoth(url: string): Promise<void> {
  await page.evaluate((u) => {
    const w = window as unknown as PageGlobals
    // Ours where the DOM's constructor is expected: the types say they are interchangeable.
    const constructors: Record<string, typeof EventSource> = {
      ours: w.ssehub.EventSource,
      native: EventSource,
    }
    for (const [name, Source] of Object.entries(constructors)) {
      const log: string[] = (w.logs[name] = [])
      const source = new Source(u)
      w.handles[name] = source
      source.onopen = () => log.push(`open ${source.readyState}`)
      source.onmessage = (e) => log.push(`message ${e.data as string} ${e.lastEventId}`)
      source.onerror = () => log.push(`error ${source.readyState}`)
    }
  }, url)
}

describe('ssehub/client in Chromium, as shipped', () => {
  it('loads from the built files through an import map: the client and its imports, nothing else', async () => {
    const exported = await page.evaluate(() =>
      Object.keys((window as unknown as PageGlobals).ssehub).sort(),
    )
    expect(exported).toEqual(
      expect.arrayContaining(['EventSource', 'connect', 'events', 'streamChatCompletion']),
    )
    const expected = clientSources().map(
      (source) => `dist/${relative(join(repoRoot, 'src'), source).replace(/\.ts$/, '.js')}`,
    )
    expect([...pages.files.keys()].sort()).toEqual(expected)
    expect([...pages.files.values()].every((status) => status === 200)).toBe(true)
  })

  it('events() receives the published events in order, then ends on close()', async () => {
    await page.evaluate((url) => {
      const w = window as unknown as PageGlobals
      const log: string[] = (w.logs.events = [])
      const stream = w.ssehub.events({ url })
      w.handles.events = stream
      void (async () => {
        try {
          for await (const e of stream) log.push(`${e.type} ${e.data} ${e.lastEventId}`)
          log.push('end')
        } catch (error) {
          log.push(`error ${(error as Error).message}`)
        }
      })()
    }, `${hub.url}/events?topic=news`)
    await waitFor(() => hub.server.hub.subscriberCount('news') === 1, 'the subscription')
    const one = await publish({ topic: 'news', data: 'one' })
    const two = await publish({ topic: 'news', event: 'headline', data: 'two\nlines' })
    const three = await publish({ topic: 'news', data: { n: 3 } })
    await waitForLog('events', 3)
    await page.evaluate(() => (window as unknown as PageGlobals).handles.events!.close())
    expect(await waitForLog('events', 4)).toEqual([
      `message one ${one}`,
      `headline two\nlines ${two}`,
      `message {"n":3} ${three}`,
      'end',
    ])
    await waitFor(() => hub.server.hub.subscriberCount('news') === 0, 'the stream to close')
  })

  it('connect() sends a POST with a body and a custom header (relative URL, same origin)', async () => {
    await page.evaluate(() => {
      const w = window as unknown as PageGlobals
      const log: string[] = (w.logs.post = [])
      w.ssehub.connect(
        {
          url: '/echo',
          method: 'POST',
          headers: { 'x-custom': 'from the page', 'content-type': 'application/json' },
          body: JSON.stringify({ hello: 'hub' }),
          reconnect: false,
        },
        {
          onOpen: (response) => log.push(`open ${response.status}`),
          onEvent: (e) => log.push(`event ${e.data}`),
          onClosed: (info) => log.push(`closed ${info.reason}`),
          onFailure: (error) => log.push(`failure ${error.message}`),
        },
      )
    })
    expect(await waitForLog('post', 3)).toEqual([
      'open 200',
      `event ${JSON.stringify({
        method: 'POST',
        custom: 'from the page',
        contentType: 'application/json',
        accept: 'text/event-stream',
        body: '{"hello":"hub"}',
      })}`,
      'closed end',
    ])
  })

  it('EventSource: dropped by the hub, reconnects with Last-Event-ID and gets exactly the missed events (as the browser’s own)', async () => {
    await openBoth(`${hub.url}/events?topic=replay&clientId=ada`)
    await waitFor(() => hub.server.hub.clientConnectionCount('ada') === 2, 'both connections')
    const one = await publish({ topic: 'replay', data: 'one' })
    const two = await publish({ topic: 'replay', data: 'two' })
    await waitForLog('ours', 3)
    await waitForLog('native', 3)
    const dropped = await fetch(`${hub.url}/clients/ada`, { method: 'DELETE' })
    expect(dropped.status).toBe(204)
    await waitFor(() => hub.server.hub.clientConnectionCount('ada') === 0, 'the drop')
    const three = await publish({ topic: 'replay', data: 'three' })
    const four = await publish({ topic: 'replay', data: 'four' })
    // Published while both were away (retry: 500): they can only come back as a replay.
    expect(hub.server.hub.clientConnectionCount('ada')).toBe(0)
    await waitFor(() => hub.server.hub.clientConnectionCount('ada') === 2, 'both reconnections')
    const five = await publish({ topic: 'replay', data: 'five' })
    const expected = [
      'open 1',
      `message one ${one}`,
      `message two ${two}`,
      'error 0',
      'open 1',
      `message three ${three}`,
      `message four ${four}`,
      `message five ${five}`,
    ]
    expect(await waitForLog('ours', 8)).toEqual(expected)
    expect(await waitForLog('native', 8)).toEqual(expected)
    await page.evaluate(() =>
      Object.values((window as unknown as PageGlobals).handles).forEach((h) => h.close()),
    )
    // Each client: a first request without Last-Event-ID, a reconnection with the last id seen.
    expect((await Promise.all(hubRequests)).sort()).toEqual([
      'replay -',
      'replay -',
      `replay ${two}`,
      `replay ${two}`,
    ])
  })

  it('EventSource: a finished topic answers the reconnection 204, and the source is CLOSED for good', async () => {
    await openBoth(`${hub.url}/events?topic=finite`)
    await waitFor(() => hub.server.hub.subscriberCount('finite') === 2, 'both subscriptions')
    const last = await publish({ topic: 'finite', data: 'last', close: true })
    const expected = ['open 1', `message last ${last}`, 'error 0', 'error 2']
    expect(await waitForLog('ours', 4)).toEqual(expected)
    expect(await waitForLog('native', 4)).toEqual(expected)
    const states = await page.evaluate(() =>
      [
        (window as unknown as PageGlobals).handles.ours,
        (window as unknown as PageGlobals).handles.native,
      ].map((s) => (s as EventSource).readyState),
    )
    expect(states).toEqual([2, 2])
    expect((await Promise.all(hubRequests)).sort()).toEqual([
      'finite -',
      'finite -',
      `finite ${last}`,
      `finite ${last}`,
    ])
  })

  it('an id beyond Latin-1 goes back as its UTF-8 bytes, as the browser’s own EventSource sends it', async () => {
    await openBoth('/utf8-id')
    const expected = [
      'open 1',
      'message hello \u2026',
      'error 0',
      'open 1',
      'message \u2026 \u2026',
    ]
    expect((await waitForLog('ours', 5)).slice(0, 5)).toEqual(expected)
    expect((await waitForLog('native', 5)).slice(0, 5)).toEqual(expected)
    await page.evaluate(() =>
      Object.values((window as unknown as PageGlobals).handles).forEach((h) => h.close()),
    )
    expect(pages.utf8IdHeaders.slice(0, 4).sort()).toEqual(['-', '-', 'e280a6', 'e280a6'])
  })

  it('an AbortSignal ends events() and connect(), and the browser closes both requests', async () => {
    await page.evaluate((url) => {
      const w = window as unknown as PageGlobals
      const controller = (w.controllers.abort = new AbortController())
      const iterated: string[] = (w.logs.iterated = [])
      const listened: string[] = (w.logs.listened = [])
      const stream = w.ssehub.events({ url, signal: controller.signal })
      void (async () => {
        for await (const e of stream) iterated.push(`event ${e.data}`)
        iterated.push('end')
      })()
      w.ssehub.connect(
        { url, signal: controller.signal },
        {
          onEvent: (e) => listened.push(`event ${e.data}`),
          onClosed: (info) => listened.push(`closed ${info.reason}`),
          onFailure: (error) => listened.push(`failure ${error.message}`),
        },
      )
    }, `${hub.url}/events?topic=aborted`)
    await waitFor(() => hub.server.hub.subscriberCount('aborted') === 2, 'both subscriptions')
    await publish({ topic: 'aborted', data: 'before' })
    await waitForLog('iterated', 1)
    await waitForLog('listened', 1)
    await page.evaluate(() => (window as unknown as PageGlobals).controllers.abort!.abort())
    expect(await waitForLog('iterated', 2)).toEqual(['event before', 'end'])
    expect(await waitForLog('listened', 2)).toEqual(['event before', 'closed abort'])
    await waitFor(() => hub.server.hub.subscriberCount('aborted') === 0, 'both requests to close')
  })

  it('an unreachable URL: events() reports each failed attempt with its cause, then gives up', async () => {
    const url = await deadUrl()
    await page.evaluate((u) => {
      const w = window as unknown as PageGlobals
      const log: string[] = (w.logs.unreachable = [])
      const stream = w.ssehub.events({
        url: u,
        reconnect: { retryMs: 50, jitter: false, maxAttempts: 2 },
        onReconnecting: (info) =>
          log.push(`retry ${info.attempt} in ${info.delayMs}: ${info.error?.message ?? ''}`),
      })
      void (async () => {
        try {
          for await (const e of stream) log.push(`event ${e.data}`)
          log.push('end')
        } catch (error) {
          log.push(`thrown ${(error as Error).message}`)
        }
      })()
    }, url)
    const failed = `Connection to ${url} failed: Failed to fetch`
    expect(await waitForLog('unreachable', 3)).toEqual([
      `retry 1 in 50: ${failed}`,
      `retry 2 in 100: ${failed}`,
      `thrown Gave up on ${url} after 2 reconnection attempts: ${failed}. Raise maxAttempts (null: no limit) to keep trying.`,
    ])
  })
})
