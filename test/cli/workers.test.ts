/**
 * `ssehub serve --workers 2`: two processes on one port are one hub. Each test places its clients
 * on chosen workers (`GET /clients` says which node holds a connection; the primary hands new
 * connections to the workers in turn, so a retry lands on the other one) and checks exact event
 * sequences through real sockets.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { connect as http2Connect } from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { writeSelfSigned } from '../helpers/self-signed.js'
import { afterEach, describe, expect, it } from 'vitest'
import { connect, type Connection } from '../../src/client/index.js'
import { killAll, killCli, runCli, startCliHub, type CliProcess } from '../helpers/cli.js'
import { availableParallelism } from 'node:os'
import { parseServeArgs } from '../../src/cli/serve-options.js'
import { freePort, startRedis } from '../helpers/redis-server.js'
import { openStream, type RawStream } from '../helpers/raw-stream.js'
import { waitFor } from '../helpers/wait.js'

const running: CliProcess[] = []
const streams: RawStream[] = []
const clients: Connection[] = []
const dirs: string[] = []

afterEach(async () => {
  for (const client of clients.splice(0)) client.close()
  for (const stream of streams.splice(0)) stream.close()
  await killAll(running)
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

async function startWorkers(
  args: string[] = [],
  env: Record<string, string> = {},
): Promise<{ url: string; cli: CliProcess }> {
  const hub = await startCliHub(['--workers', '2', '--retry-ms', '50', ...args], env)
  running.push(hub.cli)
  // Both workers listen once the start line is written; wait until both are in the presence.
  await waitFor(async () => (await nodes(hub.url)).length === 2, 'two workers', 10_000)
  return hub
}

interface ClusterStats {
  cluster: { nodes: { node: string; stats: { connections: number } }[] }
}

async function nodes(url: string): Promise<string[]> {
  const stats = (await (await fetch(`${url}/stats`)).json()) as ClusterStats
  return stats.cluster.nodes.map((report) => report.node).sort()
}

/** The node (worker) that holds the connection of `clientId`, once it is in the presence. */
async function nodeOf(url: string, clientId: string): Promise<string> {
  return waitFor(async () => {
    const body = (await (await fetch(`${url}/clients`)).json()) as {
      connections: { clientId?: string; node: string }[]
    }
    return body.connections.find((connection) => connection.clientId === clientId)?.node
  }, `the node of ${clientId}`)
}

let fillers = 0

/**
 * Opens `GET /events?<query>&clientId=<clientId>` on a worker that `accept`s (by node id). The
 * primary hands a connection to the worker with the fewest open ones: one that landed elsewhere
 * is closed, a filler stream is opened (it lands where the rejected one did, and stays open until
 * the test ends), and the connection is opened again.
 */
async function openOn(
  url: string,
  query: string,
  clientId: string,
  accept: (node: string) => boolean,
  headers: Record<string, string> = {},
): Promise<{ stream: RawStream; node: string }> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const stream = await openStream(
      `${url}/events?${query}&clientId=${encodeURIComponent(clientId)}`,
      headers,
    )
    streams.push(stream)
    if (stream.status !== 200) return { stream, node: '' }
    const node = await nodeOf(url, clientId)
    if (accept(node)) return { stream, node }
    stream.close()
    await waitFor(
      async () =>
        (
          (await (await fetch(`${url}/clients`)).json()) as { connections: { clientId?: string }[] }
        ).connections.every((connection) => connection.clientId !== clientId),
      `${clientId} to leave`,
    )
    const filler = await openStream(`${url}/events?topic=filler&clientId=filler-${++fillers}`)
    streams.push(filler)
    await nodeOf(url, `filler-${fillers}`)
  }
  throw new Error(`could not place ${clientId} on the wanted worker`)
}

async function publish(url: string, body: object): Promise<string> {
  const response = await fetch(`${url}/publish`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  })
  expect(response.status).toBe(200)
  return ((await response.json()) as { id: string }).id
}

const any = (): boolean => true

describe('ssehub serve --workers 2', () => {
  it('replays exactly what a client missed when it resumes on the other worker', async () => {
    const { url } = await startWorkers(['--store', 'memory'])
    const first = await openOn(url, 'topic=t', 'a', any)
    const ids = [
      await publish(url, { topic: 't', data: 'e1' }),
      await publish(url, { topic: 't', data: 'e2' }),
    ]
    const seen = await first.stream.waitForEvents(2)
    expect(seen.map((event) => [event.id, event.data])).toEqual([
      [ids[0], 'e1'],
      [ids[1], 'e2'],
    ])
    first.stream.close()
    ids.push(await publish(url, { topic: 't', data: 'e3' }))
    ids.push(await publish(url, { topic: 't', data: 'e4' }))
    ids.push(await publish(url, { topic: 'other', data: 'not mine' }))
    const second = await openOn(url, 'topic=t', 'b', (node) => node !== first.node, {
      'last-event-id': ids[1]!,
    })
    expect(second.node).not.toBe(first.node)
    ids.push(await publish(url, { topic: 't', data: 'e5' }))
    const resumed = await second.stream.waitForEvents(3)
    expect(resumed.map((event) => [event.id, event.data])).toEqual([
      [ids[2], 'e3'],
      [ids[3], 'e4'],
      [ids[5], 'e5'],
    ])
    // The replay, then the id-only frame of the snapshot, then live: no gap, no duplicate.
    expect(second.stream.text()).toBe(
      `retry: 50\n\nid: ${ids[2]}\ndata: e3\n\nid: ${ids[3]}\ndata: e4\n\nid: ${ids[4]}\n\nid: ${ids[5]}\ndata: e5\n\n`,
    )
  })

  it('delivers topic, client id and broadcast targets to connections on either worker', async () => {
    const { url } = await startWorkers(['--store', 'memory'])
    const x = await openOn(url, 'topic=news', 'x', any)
    const y = await openOn(url, 'topic=news', 'y', (node) => node !== x.node)
    const toY = await publish(url, { clientId: 'y', data: 'for y' })
    const toX = await publish(url, { clientId: 'x', data: 'for x' })
    const toNews = await publish(url, { topic: 'news', data: 'news' })
    const toAll = await publish(url, { all: true, data: 'everyone' })
    const xs = await x.stream.waitForEvents(3)
    const ys = await y.stream.waitForEvents(3)
    expect(xs.map((event) => [event.id, event.data])).toEqual([
      [toX, 'for x'],
      [toNews, 'news'],
      [toAll, 'everyone'],
    ])
    expect(ys.map((event) => [event.id, event.data])).toEqual([
      [toY, 'for y'],
      [toNews, 'news'],
      [toAll, 'everyone'],
    ])
    // The online count is the hub's: one subscriber on each worker.
    const topic = (await (await fetch(`${url}/topics/news`)).json()) as {
      subscribers: number
      nodes: Record<string, number>
    }
    expect(topic.subscribers).toBe(2)
    expect(topic.nodes).toEqual({ [x.node]: 1, [y.node]: 1 })
  })

  it('answers /metrics and /stats for the whole hub, and /stats for each worker', async () => {
    const { url } = await startWorkers(['--store', 'memory'])
    const x = await openOn(url, 'topic=m', 'x', any)
    const y = await openOn(url, 'topic=m', 'y', (node) => node !== x.node)
    await publish(url, { topic: 'm', data: 'counted' })
    await x.stream.waitForEvents(1)
    await y.stream.waitForEvents(1)
    // Whichever worker answers, the figures are the hub's (fillers may add streams).
    const value = (text: string, name: string): number =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1])
    for (let i = 0; i < 2; i++) {
      const text = await (await fetch(`${url}/metrics`)).text()
      const stats = (await (await fetch(`${url}/stats`)).json()) as ClusterStats & {
        cluster: { totals: { connections: number } }
      }
      expect(value(text, 'ssehub_connections')).toBe(stats.cluster.totals.connections)
      expect(value(text, 'ssehub_broker_up')).toBe(1)
      expect(value(text, 'ssehub_events_out_total')).toBeGreaterThanOrEqual(2)
      const perWorker = Object.fromEntries(
        stats.cluster.nodes.map((report) => [report.node, report.stats.connections]),
      )
      expect(perWorker[x.node]).toBeGreaterThanOrEqual(1)
      expect(perWorker[y.node]).toBeGreaterThanOrEqual(1)
    }
  })

  it('ends a finished topic on every worker and answers 204 to a resume after its end', async () => {
    const { url } = await startWorkers(['--store', 'memory'])
    const x = await openOn(url, 'topic=job', 'x', any)
    const y = await openOn(url, 'topic=job', 'y', (node) => node !== x.node)
    const firstId = await publish(url, { topic: 'job', data: 'partial' })
    const lastId = await publish(url, { topic: 'job', data: 'done', close: true })
    for (const { stream } of [x, y]) {
      await stream.ended
      expect(stream.events.map((event) => [event.id, event.data])).toEqual([
        [firstId, 'partial'],
        [lastId, 'done'],
      ])
    }
    // A client that saw the end, on either worker: 204, nothing more will come.
    for (const node of [x.node, y.node]) {
      const again = await openOn(url, 'topic=job', `late-${node}`, (n) => n === node, {
        'last-event-id': lastId,
      })
      expect(again.stream.status).toBe(204)
    }
    // One that missed the end gets it, then the stream ends.
    const behind = await openStream(`${url}/events?topic=job`, { 'last-event-id': firstId })
    streams.push(behind)
    await behind.ended
    expect(behind.events.map((event) => [event.id, event.data])).toEqual([[lastId, 'done']])
    const state = (await (await fetch(`${url}/topics/job`)).json()) as { state: string }
    expect(state.state).toBe('ended')
  })

  it('DELETE /clients/{id} ends its connections on every worker', async () => {
    const { url } = await startWorkers(['--store', 'memory'])
    const one = await openOn(url, 'topic=t', 'c', any)
    // The same client id on the other worker: /clients shows both; place by count per node.
    let other: RawStream | undefined
    for (let attempt = 0; attempt < 20 && other === undefined; attempt++) {
      const stream = await openStream(`${url}/events?topic=t&clientId=c`)
      streams.push(stream)
      const placed = await waitFor(async () => {
        const body = (await (await fetch(`${url}/clients`)).json()) as {
          connections: { clientId?: string; node: string }[]
        }
        const mine = body.connections.filter((connection) => connection.clientId === 'c')
        return mine.length === 2 ? mine : null
      }, 'the second connection')
      if (placed.some((connection) => connection.node !== one.node)) other = stream
      else {
        stream.close()
        await stream.ended
        // A filler on the same worker, so that the next connection goes to the other one.
        const filler = await openStream(`${url}/events?topic=filler&clientId=filler-${++fillers}`)
        streams.push(filler)
        await nodeOf(url, `filler-${fillers}`)
      }
    }
    expect(other).toBeDefined()
    const response = await fetch(`${url}/clients/c`, { method: 'DELETE' })
    expect(response.status).toBe(204)
    await one.stream.ended
    await other!.ended
    // Once both workers saw their connection leave: connected on no worker.
    await waitFor(
      async () => (await fetch(`${url}/clients/c`, { method: 'DELETE' })).status === 404,
      'a 404 for the gone client',
    )
  })

  it('keeps the connection limits hub-wide', async () => {
    const { url } = await startWorkers([
      '--store',
      'memory',
      '--max-connections',
      '2',
      '--max-connections-per-client',
      '1',
    ])
    const a = await openOn(url, 'topic=t', 'a', any)
    // Client a again, whichever worker it lands on: refused (one connection per client).
    for (let i = 0; i < 2; i++) {
      const again = await openStream(`${url}/events?topic=t&clientId=a`)
      streams.push(again)
      expect(again.status).toBe(503)
      expect(JSON.parse(await again.ended.then(() => again.text()))).toMatchObject({
        error: { code: 'ERR_SSE_LIMIT_REACHED' },
      })
    }
    const b = await openOn(url, 'topic=t', 'b', any)
    // Two connections on the hub, one per worker (the primary hands each to the least loaded): a
    // third is refused though its worker holds one.
    expect(b.node).not.toBe(a.node)
    for (let i = 0; i < 2; i++) {
      const third = await openStream(`${url}/events?topic=t&clientId=c${i}`)
      streams.push(third)
      expect(third.status).toBe(503)
    }
  })

  it('evicts the hub-wide least recently written connection under --overflow evict', async () => {
    const { url } = await startWorkers([
      '--store',
      'memory',
      '--max-connections',
      '2',
      '--overflow',
      'evict',
    ])
    const a = await openOn(url, 'topic=t', 'a', any)
    const b = await openOn(url, 'topic=t', 'b', any)
    expect(b.node).not.toBe(a.node)
    // b was written to last: a is the least recently written of the hub.
    await publish(url, { clientId: 'b', data: 'fresh' })
    await b.stream.waitForEvents(1)
    const c = await openStream(`${url}/events?topic=t&clientId=c`)
    streams.push(c)
    expect(c.status).toBe(200)
    await a.stream.ended
    expect(b.stream.isEnded()).toBe(false)
    await waitFor(
      async () =>
        ((await (await fetch(`${url}/stats`)).json()) as ClusterStats).cluster.nodes.reduce(
          (sum, report) => sum + report.stats.connections,
          0,
        ) === 2,
      'two connections on the hub',
    )
  })

  it('restarts a worker killed with -9 under load; every client resumes with an exact sequence', async () => {
    const port = await freePort()
    const { url, cli } = await startWorkers(['--port', String(port), '--store', 'memory'])
    const subscribers: { got: string[]; resets: number }[] = []
    for (let i = 0; i < 8; i++) {
      const subscriber = { got: [] as string[], resets: 0 }
      subscribers.push(subscriber)
      clients.push(
        connect(
          {
            url: `${url}/events?topic=load`,
            reconnect: { retryMs: 50, maxRetryMs: 200, jitter: false },
          },
          {
            onEvent: (event) => {
              if (event.type === 'ssehub.reset') subscriber.resets++
              else subscriber.got.push(event.data)
            },
            onFailure: (error) => {
              throw error
            },
          },
        ),
      )
    }
    const count = async (): Promise<Record<string, number>> =>
      ((await (await fetch(`${url}/topics/load`)).json()) as { nodes: Record<string, number> })
        .nodes
    await waitFor(
      async () => Object.values(await count()).reduce((a, b) => a + b, 0) === 8,
      'every subscriber',
    )
    const before = await count()
    expect(Object.values(before).every((n) => n > 0)).toBe(true)
    const victim = Object.keys(before)[0]!
    const pid = Number(/:(\d+)\//.exec(victim)![1])
    const acknowledged: string[] = []
    let stop = false
    let n = 0
    const publisher = (async () => {
      while (!stop) {
        const data = String(++n)
        // node:cluster may lose a connection it was handing to the worker as it died: a
        // publish that hangs is given up on (it was not acknowledged).
        const response = await fetch(`${url}/publish`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ topic: 'load', data }),
          signal: AbortSignal.timeout(2_000),
        }).catch(() => null)
        if (response?.status === 200) acknowledged.push(data)
        await response?.arrayBuffer()
      }
    })()
    await waitFor(() => acknowledged.length >= 50, 'publishes before the kill', 10_000)
    process.kill(pid, 'SIGKILL')
    // The primary forks another worker; the victim's clients reconnect and resume.
    await waitFor(
      async () => {
        // (A kept-alive socket to the dead worker fails once: ask again.)
        const now = await nodes(url).catch((): string[] => [])
        return now.length === 2 && !now.includes(victim)
      },
      'a new worker',
      10_000,
    )
    const mark = acknowledged.length
    await waitFor(() => acknowledged.length >= mark + 50, 'publishes after the kill', 10_000).catch(
      (error: unknown) => {
        console.log(cli.stdout(), cli.stderr(), acknowledged.length, mark, n)
        throw error
      },
    )
    stop = true
    await publisher
    const last = acknowledged.at(-1)!
    await waitFor(
      () => subscribers.every((s) => s.got.at(-1) === last),
      'every subscriber to catch up',
      10_000,
    )
    // A publish in flight on the killed worker may have been published without its answer:
    // every client got the same sequence, in order, once each, with every acknowledged event.
    const reference = subscribers[0]!.got
    expect(reference.map(Number)).toEqual([...reference.map(Number)].sort((a, b) => a - b))
    expect(new Set(reference).size).toBe(reference.length)
    for (const data of acknowledged) expect(reference).toContain(data)
    for (const subscriber of subscribers) {
      expect(subscriber.resets).toBe(0)
      expect(subscriber.got).toEqual(reference)
    }
    expect(cli.stdout()).toMatch(/worker \d+ \(pid \d+\) exited \(SIGKILL\); starting another/)
  })

  it('takes its workers down when the primary is killed with -9 (no orphans)', async () => {
    const { url, cli } = await startWorkers(['--store', 'memory'])
    const pids = (await nodes(url)).map((node) => Number(/:(\d+)\//.exec(node)![1]))
    expect(pids).toHaveLength(2)
    await killCli(cli)
    await waitFor(
      () =>
        pids.every((pid) => {
          try {
            process.kill(pid, 0)
            return false
          } catch {
            return true
          }
        }),
      'the workers to exit',
      5_000,
    )
  })

  it('drains every worker on SIGTERM and exits 0', async () => {
    const { url, cli } = await startWorkers(['--store', 'memory', '--shutdown-timeout-ms', '2000'])
    const x = await openOn(url, 'topic=t', 'x', any)
    const y = await openOn(url, 'topic=t', 'y', (node) => node !== x.node)
    const pids = [x.node, y.node].map((node) => Number(/:(\d+)\//.exec(node)![1]))
    const started = Date.now()
    cli.child.kill('SIGTERM')
    await Promise.all([x.stream.ended, y.stream.ended])
    expect(await cli.exited).toBe(0)
    expect(Date.now() - started).toBeLessThan(2000 + 2000)
    for (const pid of pids) expect(() => process.kill(pid, 0)).toThrow()
    expect(cli.stdout()).toMatch(/ssehub stopped: every worker drained/)
  })

  it('keeps the durable store in the primary: a restart of the whole hub resumes exactly', async () => {
    const port = await freePort()
    const dataDir = mkdtempSync(join(tmpdir(), 'ssehub-workers-'))
    dirs.push(dataDir)
    const env = { SSEHUB_DATA_DIR: dataDir }
    const hub = await startWorkers(['--port', String(port)], env)
    expect(hub.cli.stdout()).toMatch(/\(durable broker, 2 workers\)/)
    const ids = [
      await publish(hub.url, { topic: 'd', data: 'one' }),
      await publish(hub.url, { topic: 'd', data: 'two' }),
      await publish(hub.url, { topic: 'd', data: 'three' }),
    ]
    await killCli(hub.cli)
    const again = await startWorkers(['--port', String(port)], env)
    const stream = await openStream(`${again.url}/events?topic=d`, { 'last-event-id': ids[0]! })
    streams.push(stream)
    const events = await stream.waitForEvents(2)
    expect(events.map((event) => [event.id, event.data])).toEqual([
      [ids[1], 'two'],
      [ids[2], 'three'],
    ])
  })

  it('serves HTTP/2 over TLS on the connections the primary hands over', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ssehub-workers-tls-'))
    dirs.push(dir)
    const files = writeSelfSigned(dir)
    const cli = runCli([
      'serve',
      '--port',
      '0',
      '--workers',
      '2',
      '--store',
      'memory',
      '--tls-cert',
      files.cert,
      '--tls-key',
      files.key,
    ])
    running.push(cli)
    const url = (
      await waitFor(() => /listening on (https:\/\/\S+)/.exec(cli.stdout()), 'the hub', 10_000)
    )[1]!
    const session = http2Connect(url, { rejectUnauthorized: false })
    try {
      const stream = session.request({ ':path': '/events?topic=tls' })
      stream.setEncoding('utf8')
      let text = ''
      stream.on('data', (chunk: string) => (text += chunk))
      await waitFor(() => text.includes('id: '), 'the stream to open')
      const published = session.request({
        ':method': 'POST',
        ':path': '/publish',
        'content-type': 'application/json',
      })
      published.end(JSON.stringify({ topic: 'tls', data: 'over h2' }))
      await waitFor(() => text.includes('data: over h2\n'), 'the event over HTTP/2')
      stream.close()
    } finally {
      session.close()
    }
  })

  it('makes each worker a Redis node with --redis: one hub over Redis', async () => {
    const redis = await startRedis()
    try {
      const { url, cli } = await startWorkers(['--redis', redis.url, '--redis-prefix', 'wk:{h}:'])
      expect(cli.stdout()).toMatch(/\(redis broker, 2 workers\)/)
      const x = await openOn(url, 'topic=r', 'x', any)
      const y = await openOn(url, 'topic=r', 'y', (node) => node !== x.node)
      const id = await publish(url, { topic: 'r', data: 'via redis' })
      for (const { stream } of [x, y]) {
        const [event] = await stream.waitForEvents(1)
        expect([event!.id, event!.data]).toEqual([id, 'via redis'])
      }
    } finally {
      await killAll(running)
      await redis.stop()
    }
  })
})

describe('--workers', () => {
  it('stops with one line and exit 2 when its workers cannot serve (an open hub on 0.0.0.0)', async () => {
    const cli = runCli([
      'serve',
      '--workers',
      '2',
      '--store',
      'memory',
      '--port',
      '0',
      '--host',
      '0.0.0.0',
    ])
    running.push(cli)
    expect(await cli.exited).toBe(2)
    expect(cli.stderr()).toBe(
      'ssehub: Refusing to listen on 0.0.0.0 without a publish key: anyone could publish. Set --publish-key (or SSEHUB_PUBLISH_KEY), or pass --allow-anonymous-publish.\n',
    )
  })

  it("takes a number of processes or 'auto' (one per core); 1 by default", () => {
    expect(parseServeArgs([], {}).workers).toBe(1)
    expect(parseServeArgs(['--workers', '4'], {}).workers).toBe(4)
    expect(parseServeArgs(['--workers', 'auto'], {}).workers).toBe(availableParallelism())
    expect(parseServeArgs([], { SSEHUB_WORKERS: '3' }).workers).toBe(3)
  })

  it.each(['0', '-1', 'two', '1000'])('refuses --workers %s in one line', (value) => {
    expect(() => parseServeArgs(['--workers', value], {})).toThrow(
      `--workers expects 'auto' or a number of processes from 1 to 256, got "${value}"`,
    )
  })
})
