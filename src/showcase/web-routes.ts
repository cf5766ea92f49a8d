/**
 * The showcase's routes: the dashboard page (`GET /`), the tickets that open its feed
 * (`POST /dashboard/ticket`), the feed (`GET /dashboard/events`), the favicon, and the demos
 * (`/demo/chat`, `/demo/progress`, `/demo/ticker`; the chat demo runs on the API's `POST /relays`,
 * the progress demo has its start endpoint). A part the hub
 * server mounts beside its API (see server/mount.ts); it uses the hub's public API like any
 * application.
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { ErrorCodes, SseError } from '../errors.js'
import type { Hub } from '../hub/hub.js'
import { encodeEventText } from '../wire/encode.js'
import { readBody } from '../server/body.js'
import type { HubServerMount, MountRequest } from '../server/mount.js'
import { writeAnswer } from '../server/node-front.js'
import { jsonAnswer } from '../server/pipeline.js'
import { dashboardHtml } from './dashboard.js'
import { faviconSvg } from './favicon.js'
import { chatPage, progressPage, tickerPage } from './pages/demos.js'
import { createTicketStore, TICKET_DEFAULTS } from './tickets.js'

/** What the web routes need from the server. */
export interface WebContext {
  readonly hub: Hub
  readonly dashboard: boolean
  readonly demos: boolean
}

const ID = /^[A-Za-z0-9_-]{1,64}$/
// DoS guards: demo work running at once, and dashboard feeds open at once.
const MAX_RUNNING = 32
const MAX_FEEDS = 64
const FEED_TOPICS = 200
// Nodes listed in a dashboard frame (the cluster's first ones; the totals count them all).
const FEED_NODES = 100

function bad(message: string): SseError {
  return new SseError(ErrorCodes.BAD_REQUEST, message)
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const body = await readBody(req, 16_384)
  if (body.length === 0) return {}
  try {
    const value = JSON.parse(body.toString('utf8')) as unknown
    if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
      return value as Record<string, unknown>
    }
  } catch {
    // Answered below: not JSON.
  }
  throw bad('Expected a JSON object body, e.g. {"id": "abc"}.')
}

function idOf(body: Record<string, unknown>): string {
  const id = body.id
  if (typeof id !== 'string' || !ID.test(id)) {
    throw bad('Expected `id` to be 1 to 64 characters of A-Z, a-z, 0-9, `_` or `-`.')
  }
  return id
}

function html(res: ServerResponse, page: string): void {
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-cache',
    // Pages talk to this origin only (connect-src falls back to 'self'): a script injected into
    // the dashboard, which holds an operator's key, could not send it elsewhere; no framing.
    'content-security-policy':
      "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    'x-content-type-options': 'nosniff',
  })
  res.end(page)
}

function favicon(res: ServerResponse): void {
  res.writeHead(200, {
    // An SVG at the classic path: every current browser but Safari draws it (Safari shows its
    // default icon, as it did for the old 404). No script in it, and a CSP that forbids any.
    'content-type': 'image/svg+xml',
    'content-length': String(Buffer.byteLength(faviconSvg)),
    'cache-control': 'public, max-age=86400',
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'",
    'x-content-type-options': 'nosniff',
  })
  res.end(faviconSvg)
}

// The API's own JSON answer writer: the same headers as every other JSON answer of the server.
function sendJson(res: ServerResponse, status: number, value: unknown): void {
  writeAnswer(res, jsonAnswer(status, value))
}

/** Creates the dashboard, its feed and the demo routes over `context.hub`. */
export function createWebRoutes(context: WebContext): HubServerMount {
  const { hub } = context
  const running = new Map<string, AbortController>()
  const feeds = new Set<ServerResponse>()
  const tickets = createTicketStore()
  let feedTimer: NodeJS.Timeout | undefined
  let tickerTimer: NodeJS.Timeout | undefined
  const prices = new Map<string, number>([
    ['ACME', 120],
    ['GLOBEX', 48],
    ['INITECH', 9.5],
    ['UMBRELLA', 302],
  ])

  // Cluster-wide: a sample of every node's connections (the busiest topics and client ids) and
  // each node's last report; on one node, this node. If the presence cannot be read, this node's
  // share is shown and the page says why.
  const snapshot = async (): Promise<string> => {
    let connections: readonly { topics: readonly string[]; clientId: string | undefined }[]
    let nodes: readonly { node: string; reportedAt: number; stats: object }[]
    let clusterError: string | undefined
    try {
      ;[connections, nodes] = await Promise.all([
        hub.describeClusterConnections(1000),
        hub.clusterNodes(),
      ])
    } catch (error) {
      clusterError = (error as Error).message
      connections = hub.describeConnections(1000)
      nodes = [{ node: hub.node, reportedAt: Date.now(), stats: hub.stats() }]
    }
    const topics = new Map<string, number>()
    const clientIds = new Map<string, number>()
    for (const connection of connections) {
      for (const topic of connection.topics) topics.set(topic, (topics.get(topic) ?? 0) + 1)
      if (connection.clientId !== undefined) {
        clientIds.set(connection.clientId, (clientIds.get(connection.clientId) ?? 0) + 1)
      }
    }
    const top = <K>(map: Map<K, number>): Array<[K, number]> =>
      [...map].sort((a, b) => b[1] - a[1]).slice(0, FEED_TOPICS)
    return encodeEventText({
      event: 'stats',
      data: JSON.stringify({
        at: Date.now(),
        node: hub.node,
        stats: hub.stats(),
        nodes: nodes.slice(0, FEED_NODES),
        ...(clusterError === undefined ? {} : { clusterError }),
        topics: top(topics),
        clientIds: top(clientIds),
      }),
    })
  }

  // One snapshot at a time: a slow presence read skips ticks instead of piling them up.
  let snapshotting = false
  const tickFeeds = (): void => {
    if (feeds.size === 0 || snapshotting) return
    snapshotting = true
    snapshot()
      .then((frame) => {
        for (const res of feeds) {
          // A feed that does not read just skips ticks: at most one frame is ever queued.
          if (!res.writableNeedDrain) res.write(frame)
        }
      })
      .catch((error: unknown) => hub.reportError(error as Error))
      .finally(() => (snapshotting = false))
  }

  const openFeed = (res: ServerResponse): void => {
    if (feeds.size >= MAX_FEEDS) {
      throw new SseError(ErrorCodes.LIMIT_REACHED, 'Too many dashboards are open.')
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-accel-buffering': 'no',
    })
    res.write('retry: 2000\n\n')
    feeds.add(res)
    tickFeeds()
    res.once('close', () => {
      feeds.delete(res)
      if (feeds.size === 0 && feedTimer !== undefined) {
        clearInterval(feedTimer)
        feedTimer = undefined
      }
    })
    if (feedTimer === undefined) {
      feedTimer = setInterval(tickFeeds, 1000)
      feedTimer.unref()
    }
  }

  const tick = (): void => {
    if (hub.subscriberCount('demo/ticker') === 0) return
    const quotes: Record<string, number> = {}
    for (const [symbol, price] of prices) {
      const next = Math.max(0.01, price * (1 + (Math.random() - 0.5) * 0.01))
      prices.set(symbol, next)
      quotes[symbol] = Math.round(next * 100) / 100
    }
    hub.publish({ topic: 'demo/ticker', event: 'prices', data: quotes }).catch(() => undefined)
  }

  const claim = (id: string): AbortController => {
    if (running.has(id)) throw new SseError(ErrorCodes.CONFLICT, `${id} is running; stop it first.`)
    if (running.size >= MAX_RUNNING) {
      throw new SseError(ErrorCodes.LIMIT_REACHED, 'Too many demos are running; retry later.')
    }
    const controller = new AbortController()
    running.set(id, controller)
    return controller
  }

  const startProgress = (id: string): void => {
    const key = `progress/${id}`
    const controller = claim(key)
    const topic = `demo/progress/${id}`
    void (async () => {
      try {
        for (let pct = 0; pct <= 100 && !controller.signal.aborted; pct += 5) {
          await new Promise((resolve) => setTimeout(resolve, 100))
          await hub.publish({
            topic,
            event: 'progress',
            data: { pct },
            ...(pct === 100 ? { close: true } : {}),
          })
        }
      } catch {
        // The hub closed: nothing to report to.
      } finally {
        running.delete(key)
      }
    })()
  }

  return {
    async handle(req: IncomingMessage, res: ServerResponse, request: MountRequest) {
      const method = req.method ?? 'GET'
      const { path } = request
      const read = method === 'GET' || method === 'HEAD'
      if (path === '/favicon.ico' && read && (context.dashboard || context.demos)) {
        favicon(res)
        return true
      }
      if (path === '/' && context.dashboard && read) {
        html(res, dashboardHtml)
        return true
      }
      if (path === '/dashboard/ticket' && context.dashboard) {
        if (method !== 'POST') return false
        // The key arrives in a header, once per feed connection; the URL gets a ticket.
        await request.operator({
          message:
            'A dashboard ticket needs the publish key: send `Authorization: Bearer <key>` (the dashboard page does, once you enter the key).',
        })
        sendJson(res, 200, { ticket: tickets.issue(), expiresInMs: TICKET_DEFAULTS.ttlMs })
        return true
      }
      if (path === '/dashboard/events' && context.dashboard) {
        if (method !== 'GET') return false
        const ticket = request.query().get('ticket')
        if (ticket === null) {
          // No ticket: the operator rule on the request's own headers (a tool with the key).
          await request.operator({
            message:
              'The dashboard feed needs a ticket: POST /dashboard/ticket with `Authorization: Bearer <key>`, then GET /dashboard/events?ticket=<ticket> (the dashboard page does this once you enter the key).',
          })
        } else if (!tickets.redeem(ticket)) {
          throw new SseError(
            ErrorCodes.UNAUTHORIZED,
            `This dashboard ticket is unknown, spent or expired (a ticket opens one feed within ${TICKET_DEFAULTS.ttlMs / 1000} s): POST /dashboard/ticket for another.`,
          )
        }
        openFeed(res)
        return true
      }
      if (!context.demos || !path.startsWith('/demo/')) return false
      if (method === 'GET' || method === 'HEAD') {
        const page =
          path === '/demo/chat'
            ? chatPage
            : path === '/demo/progress'
              ? progressPage
              : path === '/demo/ticker'
                ? tickerPage
                : undefined
        if (page === undefined) return false
        if (path === '/demo/ticker' && tickerTimer === undefined) {
          tickerTimer = setInterval(tick, 300)
          tickerTimer.unref()
        }
        html(res, page)
        return true
      }
      if (method !== 'POST') return false
      // Demo work publishes into the hub (and may call a paid LLM): operators only on a closed hub.
      await request.operator({
        message: 'The demos need the publish key on this hub: send `Authorization: Bearer <key>`.',
      })
      const body = await readJson(req)
      if (path === '/demo/progress/start') {
        const id = idOf(body)
        startProgress(id)
        sendJson(res, 202, { topic: `demo/progress/${id}` })
        return true
      }
      return false
    },
    close() {
      for (const controller of running.values()) controller.abort()
      if (feedTimer !== undefined) clearInterval(feedTimer)
      if (tickerTimer !== undefined) clearInterval(tickerTimer)
      for (const res of feeds) res.end()
      feeds.clear()
    },
  }
}
