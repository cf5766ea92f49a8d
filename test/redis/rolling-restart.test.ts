/**
 * A rolling restart of three `ssehub serve --redis` processes under load, with the settings
 * docs/deployment.md ("Rolling restarts") gives: each node in turn gets SIGTERM, ends its streams
 * in waves across its shutdown budget (each told a jittered `retry:`), exits, comes back on the
 * same port and answers `/healthz` before the next one goes. Meanwhile a publisher offers 400
 * events/s to the live nodes and 90 of our own clients (`ssehub/client`) follow them: each one
 * reaches the nodes through a load balancer of its own (an injected `fetch` that knows the three
 * URLs, sends a reconnection to the next node and passes over a node that refuses), and resumes
 * there with `Last-Event-ID`.
 *
 * Exact means: each client has every acknowledged event it follows once, with the id the publisher
 * was given, in log order, and nothing else (no `ssehub.reset`, one epoch); a publish that got no
 * answer is in the log or not, and if it is, every client it targets has it once, in place. Three
 * control clients behind a balancer that drops `Last-Event-ID` must show holes, so the check can
 * fail.
 */
import { readFileSync } from 'node:fs'
import { Agent, request } from 'node:http'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { envOf, serveSpecs } from '../../src/cli/serve-flags.js'
import { connect, type Connection } from '../../src/client/index.js'
import { HUB_DEFAULTS } from '../../src/hub/hub-options.js'
import { SERVER_DEFAULTS } from '../../src/server/server-options.js'
import { runCli, type CliProcess } from '../helpers/cli.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'

/** The test nodes' shutdown budget: short, for a short test (waves over 1.2 s a node). */
const SHUTDOWN_TIMEOUT_MS = 1_500
const SUBSCRIBERS = 90
const LANES = 8
/** Each lane publishes one event at a time, every 20 ms: 400 publishes/s offered in all. */
const LANE_PERIOD_MS = 20
/** Six topics: a client follows one or two, so that 90 clients in this process keep up. */
const TOPICS = ['t0', 't1', 't2', 't3', 't4', 't5']
const PREFIX = `roll:{h}:`

let redis: TestRedis
const nodes: Node[] = []
const clients: Subscriber[] = []

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})
afterEach(async () => {
  for (const client of clients.splice(0)) client.close()
  for (const node of nodes.splice(0)) {
    const { child, exited } = node.cli
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  }
})

/** One `ssehub serve` process and the port it keeps across restarts. */
interface Node {
  port: number
  cli: CliProcess
}

/** Starts `ssehub serve --redis` on `port` (0: a free one) with the rollout settings. */
async function startNode(port: number): Promise<Node> {
  const cli = runCli([
    'serve',
    '--port',
    String(port),
    '--redis',
    redis.url,
    '--redis-prefix',
    PREFIX,
    '--shutdown-timeout-ms',
    String(SHUTDOWN_TIMEOUT_MS),
    '--heartbeat-ms',
    '1000',
    // 90 clients from one address, all on one node at times; no client ids here.
    '--max-connections-per-client',
    'off',
  ])
  const match = await waitFor(
    () =>
      /listening on http:\/\/127\.0\.0\.1:(\d+)/.exec(cli.stdout()) ??
      (cli.child.exitCode !== null ? Promise.reject(new Error(cli.stderr())) : null),
    `a node to listen on port ${port}`,
    10_000,
  )
  return { port: Number(match[1]), cli }
}

const urlOf = (node: Node): string => `http://127.0.0.1:${node.port}`

/** The failure of a fetch that never reached a listening node: nothing was received. */
function refused(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string } }).cause
  return cause?.code === 'ECONNREFUSED'
}

/**
 * The publisher's keep-alive connections, as an application backend keeps them. (node:http
 * rather than fetch: a quarter of fetch's CPU per request, and this process also parses every
 * client's events.)
 */
const agent = new Agent({ keepAlive: true })

/** `POST url` with a JSON body: the status and the parsed answer. */
function post(url: string, body: string): Promise<{ status: number; answer: unknown }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (chunk: string) => (text += chunk))
        res.on('end', () => resolve({ status: res.statusCode!, answer: JSON.parse(text) }))
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(body)
  })
}

/** What a rollout drill records of one stream's move: when its stream ended, when it came back. */
interface Move {
  readonly from: number
  readonly endedAt: number
  readonly requestAt: number
}

/**
 * One of our clients behind a load balancer of its own: the injected `fetch` sends each request
 * to the node it is at, a reconnection to the next one, and passes over a node that refuses the
 * connection or answers 503 (a node shutting down refuses streams it can no longer serve), as a
 * proxy configured to retry another upstream does.
 */
class Subscriber {
  readonly events: { type: string; data: string; id: string }[] = []
  readonly moves: Move[] = []
  /** The node it is connected to (or was, while it reconnects). */
  node: number
  private ended: { from: number; at: number } | null = null
  private readonly connection: Connection
  failure: Error | null = null

  constructor(
    readonly topics: readonly string[],
    node: number,
    /** The negative control: a balancer that drops `Last-Event-ID`, so moves lose events. */
    private readonly dropsLastEventId = false,
  ) {
    this.node = node
    const query = topics.map((topic) => `topic=${topic}`).join('&')
    this.connection = connect(
      {
        url: `http://lb.invalid/events?${query}`,
        fetch: (url, init) => this.route(url, init),
        // The server's `retry:` decides; a failed attempt backs off from there.
        reconnect: { retryMs: 50, maxRetryMs: 500 },
      },
      {
        onEvent: (event) =>
          this.events.push({ type: event.type, data: event.data, id: event.lastEventId }),
        onReconnecting: (info) => {
          // A clean end (the drain's), not a failed attempt: the stream moves on.
          if (info.error === undefined) this.ended ??= { from: this.node, at: Date.now() }
        },
        onFailure: (error) => (this.failure = error),
      },
    )
  }

  get open(): boolean {
    return this.connection.state === 'open'
  }

  close(): void {
    this.connection.close()
  }

  private async route(url: string, init: RequestInit): Promise<Response> {
    const path = url.slice('http://lb.invalid'.length)
    if (this.dropsLastEventId) {
      const headers = new Headers(init.headers)
      headers.delete('last-event-id')
      init = { ...init, headers }
    }
    const requestAt = Date.now()
    // A reconnection goes to the next node; a first connection to the one it was given.
    let at = this.ended === null ? this.node : this.node + 1
    let last: unknown
    for (let tries = 0; tries < nodes.length; tries++, at++) {
      const index = at % nodes.length
      try {
        const response = await fetch(urlOf(nodes[index]!) + path, init)
        if (response.status === 503) {
          await response.body?.cancel()
          last = new Error(`node ${index}: 503`)
          continue
        }
        if (this.ended !== null) {
          this.moves.push({ from: this.ended.from, endedAt: this.ended.at, requestAt })
          this.ended = null
        }
        this.node = index
        return response
      } catch (error) {
        if (!refused(error)) throw error
        last = error
      }
    }
    throw last
  }
}

interface Target {
  readonly topic?: string | readonly string[]
  readonly all?: true
}

/** Each seq's target: mostly one topic, some two, some everyone. */
function targetOf(seq: number): Target {
  const topic = TOPICS[seq % TOPICS.length]!
  if (seq % 20 === 19) return { all: true }
  if (seq % 20 === 9) return { topic: [topic, TOPICS[(seq + 1) % TOPICS.length]!] }
  return { topic }
}

function matches(target: Target, topics: readonly string[]): boolean {
  if (target.all === true) return true
  const targeted = typeof target.topic === 'string' ? [target.topic] : (target.topic ?? [])
  return targeted.some((topic) => topics.includes(topic))
}

/** `1~0.<epoch>.<ms>-<n>` -> [ms, n]: the Redis stream position, which orders the log. */
function position(id: string): [number, number] {
  const entry = id.slice(id.lastIndexOf('.') + 1)
  const [ms, n] = entry.split('-')
  return [Number(ms), Number(n)]
}
const byPosition = (a: string, b: string): number => {
  const [x, y] = [position(a), position(b)]
  return x[0] - y[0] || x[1] - y[1]
}

interface Sent {
  readonly seq: number
  readonly lane: number
  readonly target: Target
}

/**
 * The publisher: `LANES` lanes, each sending one publish at a time on a fixed schedule to the
 * nodes in turn. A publish refused without being taken (connection refused, `503
 * ERR_SSE_CLOSED` from a node shutting down) is sent to the next node, same event; one that got
 * no answer may or may not be in the log, and is not retried (a retry could publish it twice:
 * publishes are not idempotent), the next event goes instead.
 */
class Publisher {
  readonly acked: (Sent & { readonly id: string })[] = []
  /** Sent, then the connection failed before an answer: in the log at most once. */
  readonly unanswered: (Sent & { readonly reason: string })[] = []
  /** Answers that are neither 200 nor a refusal: none expected. */
  readonly unexpected: string[] = []
  refusals = 0
  private seq = 0
  private turn = 0
  private stopped = false
  private readonly lanes: Promise<void>[] = []

  startedAt = 0
  stoppedAt = 0

  start(): void {
    const started = Date.now()
    this.startedAt = started
    for (let lane = 0; lane < LANES; lane++) this.lanes.push(this.run(lane, started))
  }

  async stop(): Promise<void> {
    this.stopped = true
    await Promise.all(this.lanes)
    this.stoppedAt = Date.now()
  }

  private async run(lane: number, started: number): Promise<void> {
    for (let n = 1; !this.stopped; n++) {
      const seq = this.seq++
      await this.publish({ seq, lane, target: targetOf(seq) })
      const wait = started + n * LANE_PERIOD_MS - Date.now()
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait))
    }
  }

  /** Publishes `sent` until a node takes it (or it may have); resolves with its id if acked. */
  async publish(sent: Sent): Promise<string | undefined> {
    const body = JSON.stringify({ ...sent.target, data: String(sent.seq) })
    for (let tries = 0; tries < 100; tries++) {
      const url = urlOf(nodes[this.turn++ % nodes.length]!)
      let status: number
      let answer: { id?: string; error?: { code?: string } }
      try {
        ;({ status, answer } = (await post(`${url}/publish`, body)) as {
          status: number
          answer: typeof answer
        })
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code
        if (code === 'ECONNREFUSED') {
          this.refusals++
          continue
        }
        this.unanswered.push({ ...sent, reason: code ?? String(error) })
        return undefined
      }
      if (status === 200 && answer.id !== undefined) {
        this.acked.push({ ...sent, id: answer.id })
        return answer.id
      }
      if (status === 503 && answer.error?.code === 'ERR_SSE_CLOSED') {
        this.refusals++
        continue
      }
      this.unexpected.push(`${status} ${JSON.stringify(answer)}`)
      return undefined
    }
    throw new Error(`no node took publish ${sent.seq}`)
  }
}

/** Counts of `times` (ms from `from`) per 100 ms bucket. */
function histogram(times: readonly number[], from: number): number[] {
  const buckets: number[] = []
  for (const time of times) {
    const bucket = Math.max(0, Math.floor((time - from) / 100))
    while (buckets.length <= bucket) buckets.push(0)
    buckets[bucket]!++
  }
  return buckets
}

describe('a rolling restart of three nodes on Redis', () => {
  it('at 400 publishes/s offered: every client has every acknowledged event once, in log order, and no reset', async () => {
    nodes.push(...(await Promise.all([0, 0, 0].map((port) => startNode(port)))))
    const subscribers = Array.from({ length: SUBSCRIBERS }, (_, i) => {
      const first = TOPICS[i % TOPICS.length]!
      const topics = i % 2 === 0 ? [first] : [first, TOPICS[(i + 3) % TOPICS.length]!]
      return new Subscriber(topics, i % nodes.length)
    })
    // The negative control, one per node: following every topic, behind a balancer that drops
    // Last-Event-ID. They must miss events, or the check below could not fail.
    const controls = nodes.map((_, node) => new Subscriber(TOPICS, node, true))
    const all = [...subscribers, ...controls]
    clients.push(...all)
    const settled = async (): Promise<boolean> => {
      if (!all.every((s) => s.open)) return false
      const counts = await Promise.all(
        nodes.map(async (node) => {
          const stats = (await (await fetch(`${urlOf(node)}/stats`)).json()) as {
            connections: number
          }
          return stats.connections
        }),
      )
      return counts.reduce((a, b) => a + b, 0) === all.length
    }
    await waitFor(settled, 'every client connected', 10_000)

    const publisher = new Publisher()
    publisher.start()
    await waitFor(() => publisher.acked.length >= 100, '100 events before the rollout', 10_000)
    const rollout: { node: number; sigterm: number; exited: number; healthy: number }[] = []
    for (let k = 0; k < nodes.length; k++) {
      const node = nodes[k]!
      const sigterm = Date.now()
      node.cli.child.kill('SIGTERM')
      expect(await node.cli.exited, node.cli.stderr()).toBe(0)
      const exited = Date.now()
      nodes[k] = await startNode(node.port)
      await waitFor(
        async () => (await fetch(`${urlOf(nodes[k]!)}/healthz`)).status === 200,
        `node ${k} healthy again`,
      )
      rollout.push({ node: k, sigterm, exited, healthy: Date.now() })
    }
    // Every client back on a live node, then events after the rollout too.
    await waitFor(settled, 'every client reconnected', 10_000)
    const after = publisher.acked.length + 100
    await waitFor(() => publisher.acked.length >= after, '100 events after the rollout', 10_000)
    await publisher.stop()
    // A fence: once a client has it, it has everything published before.
    const fence = await publisher.publish({ seq: -1, lane: -1, target: { all: true } })
    expect(fence).toBeDefined()
    await waitFor(
      () => all.every((s) => s.events.at(-1)?.data === '-1'),
      'every client to get the fence',
      15_000,
    )

    // An unanswered publish is in the log or not; if it is, every client it targets has it.
    const seen = new Map<string, string>()
    for (const s of subscribers) for (const e of s.events) seen.set(e.data, e.id)
    const landed = publisher.unanswered
      .filter((u) => seen.has(String(u.seq)))
      .map((u) => ({ ...u, id: seen.get(String(u.seq))! }))

    // What the rollout did (docs/deployment.md quotes it): per node, its streams' ends and their
    // reconnections per 100 ms after its SIGTERM. SSEHUB_ROLLING_REPORT=1 prints it.
    const report = rollout.map(({ node, sigterm, exited, healthy }) => {
      const moves = all.flatMap((s) => s.moves.filter((m) => m.from === node))
      return {
        node,
        exitedAfterMs: exited - sigterm,
        healthyAfterMs: healthy - sigterm,
        moved: moves.length,
        endedPer100ms: histogram(
          moves.map((m) => m.endedAt),
          sigterm,
        ),
        reconnectsPer100ms: histogram(
          moves.map((m) => m.requestAt),
          sigterm,
        ),
      }
    })
    const publishingMs = publisher.stoppedAt - publisher.startedAt
    if (process.env.SSEHUB_ROLLING_REPORT !== undefined) {
      console.log(
        JSON.stringify(
          {
            nodes: report.map((r) => ({
              ...r,
              endedPer100ms: r.endedPer100ms.join(' '),
              reconnectsPer100ms: r.reconnectsPer100ms.join(' '),
            })),
            acked: publisher.acked.length,
            ackedPerSecond: Math.round((publisher.acked.length * 1000) / publishingMs),
            publishingMs,
            refusals: publisher.refusals,
            unanswered: publisher.unanswered.map((u) => `${u.seq}: ${u.reason}`),
            unansweredInTheLog: landed.length,
            controlsMissed: controls.map(
              (c) =>
                publisher.acked.filter((p) => matches(p.target, TOPICS)).length +
                1 -
                c.events.length,
            ),
          },
          null,
          1,
        ),
      )
    }

    expect(publisher.unexpected).toEqual([])
    expect(all.map((s) => s.failure)).toEqual(all.map(() => null))
    // Every client moved (once per node it was on when that node went), resuming elsewhere.
    expect(all.flatMap((s, i) => (s.moves.length === 0 ? [i] : []))).toEqual([])
    // The waves and the jitter spread the reconnections: no 100 ms holds half of a node's.
    for (const { node, moved, reconnectsPer100ms } of report) {
      expect(moved).toBeGreaterThan(0)
      expect(Math.max(...reconnectsPer100ms), `node ${node}`).toBeLessThanOrEqual(moved / 2)
    }

    // Each lane published one event at a time: its acked events are in the log in its order.
    for (let lane = 0; lane < LANES; lane++) {
      const ids = publisher.acked.filter((p) => p.lane === lane).map((p) => p.id)
      expect(ids).toEqual([...ids].sort(byPosition))
    }
    const log = [...publisher.acked, ...landed].sort((a, b) => byPosition(a.id, b.id))
    const epoch = log[0]!.id.slice(0, log[0]!.id.lastIndexOf('.'))
    const sequence = (s: Subscriber): (string | object)[] =>
      s.events.map((e) =>
        // One epoch, no `ssehub.reset`, nothing but the events published.
        e.type === 'message' && e.id.startsWith(`${epoch}.`) ? `${e.data} ${e.id}` : e,
      )
    const wanted = (s: Subscriber): string[] =>
      log.filter((p) => matches(p.target, s.topics)).map((p) => `${p.seq} ${p.id}`)
    for (const [i, s] of subscribers.entries())
      expect(sequence(s), `client ${i} (${s.topics.join('+')})`).toEqual(wanted(s))
    // The controls: in order and without duplicates, but with holes where they moved.
    let missed = 0
    for (const control of controls) {
      const got = sequence(control)
      const want = wanted(control)
      expect(got).toEqual(want.filter((event) => got.includes(event)))
      missed += want.length - got.length
    }
    expect(missed).toBeGreaterThan(0)
  }, 90_000)

  it("docs/deployment.md's rollout settings name real flags, their defaults and this test's budget", () => {
    const doc = readFileSync(new URL('../../docs/deployment.md', import.meta.url), 'utf8')
    const from = doc.indexOf('### Rolling restarts')
    // Whitespace as one space: table padding and line breaks are prettier's.
    const section = doc.slice(from, doc.indexOf('\n## ', from)).replace(/\s+/g, ' ')
    const flags = new Map(serveSpecs.map((spec) => [`--${spec.flag}`, spec]))
    for (const [, flag] of section.matchAll(/`(--[a-z-]+)/g))
      expect(flags.has(flag!), flag).toBe(true)
    const budget = flags.get('--shutdown-timeout-ms')!
    const people = (n: number): string => n.toLocaleString('en-US')
    expect(section).toContain(
      `| \`--shutdown-timeout-ms\` (\`${envOf(budget)}\`) | ${people(SERVER_DEFAULTS.shutdownTimeoutMs)} (default)`,
    )
    expect(section).toContain(`\`--max-connections\` (${people(HUB_DEFAULTS.maxConnections!)})`)
    expect(section).toContain(`\`--shutdown-timeout-ms ${SHUTDOWN_TIMEOUT_MS}\``)
    expect(section).toContain(`${SUBSCRIBERS} \`ssehub/client\` clients`)
    expect(section).toContain(`${LANES} sequential lanes`)
  })
})
