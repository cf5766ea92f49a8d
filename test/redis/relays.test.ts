/**
 * Relays across nodes on one Redis: a generation started on one `ssehub serve --redis` node is
 * joined (not restarted) from another, watched on both, and aborted from the node that does not
 * run it; when the node that runs it is killed, an abort from another node ends the topic itself.
 * Real processes: Redis, two hub nodes, a fake OpenAI-compatible upstream.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { killAll, killCli, startCliHub, type CliProcess } from '../helpers/cli.js'
import { startFakeLlm, type FakeLlm } from '../helpers/fake-llm.js'
import { openStream, type RawStream } from '../helpers/raw-stream.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { relayText } from '../helpers/relay-viewer.js'
import { waitFor } from '../helpers/wait.js'

let redis: TestRedis
const running: CliProcess[] = []
const streams: RawStream[] = []
let llm: FakeLlm | undefined

beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis.stop()
})
afterEach(async () => {
  for (const stream of streams.splice(0)) stream.close()
  await killAll(running)
  await llm?.close()
  llm = undefined
})

const TOKENS = Array.from({ length: 40 }, (_, i) => `w${i} `)

/** Two nodes on one Redis prefix, both with the fake upstream as `default`: their URLs, their processes. */
async function twoNodes(prefix: string): Promise<[string, string, CliProcess[]]> {
  const nodes = await Promise.all(
    ['a', 'b'].map(async (node) => {
      const { url, cli } = await startCliHub([
        '--redis',
        redis.url,
        '--redis-prefix',
        `${prefix}:{h}:`,
        '--node-id',
        node,
        '--heartbeat-ms',
        'off',
        '--relay-upstream',
        `default=${llm!.url}`,
      ])
      running.push(cli)
      return { url, cli }
    }),
  )
  return [nodes[0]!.url, nodes[1]!.url, nodes.map((node) => node.cli)]
}

async function post(url: string, body?: unknown): Promise<{ status: number; json: any }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  })
  return { status: response.status, json: await response.json() }
}

const start = (node: string, id: string) =>
  post(`${node}/relays`, { id, upstream: 'default', body: { messages: [] } })

async function watch(node: string, id: string): Promise<RawStream> {
  const stream = await openStream(`${node}/events?from=start&topic=relay/${id}`)
  streams.push(stream)
  return stream
}

describe('relays on Redis, across nodes', () => {
  it('starts once whatever node is asked, and an abort from another node stops it for every viewer', async () => {
    llm = await startFakeLlm({ tokens: TOKENS, delayMs: 60 })
    const [a, b] = await twoNodes('relay-x')
    // Both nodes asked at once: one generation.
    const [first, second] = await Promise.all([start(a, 'g'), start(b, 'g')])
    expect([first.json.started, second.json.started].sort()).toEqual([false, true])
    const runner = first.json.started === true ? a : b
    const other = runner === a ? b : a
    const viewers = [await watch(a, 'g'), await watch(b, 'g')]
    await waitFor(() => viewers.every((v) => v.events.length >= 4), 'tokens on both nodes')
    const aborted = await post(`${other}/relays/g/abort`)
    expect(aborted).toEqual({
      status: 200,
      json: { id: 'g', topic: 'relay/g', aborted: true, state: 'ended' },
    })
    await waitFor(() => llm!.requests[0]!.cancelled, 'the upstream cancelled on the other node')
    for (const viewer of viewers) {
      await viewer.ended
      const finals = viewer.events.filter((e) => e.event === 'done' || e.event === 'error')
      expect(finals).toHaveLength(1)
      expect(JSON.parse(finals[0]!.data)).toMatchObject({
        outcome: 'aborted',
        reason: 'aborted',
        message: 'Stopped by POST /relays/g/abort.',
      })
    }
    // Both viewers saw the same text: the tokens published before the abort.
    expect(relayText(viewers[0]!)).toBe(relayText(viewers[1]!))
    expect(TOKENS.join('').startsWith(relayText(viewers[0]!))).toBe(true)
    expect(llm.requests).toHaveLength(1)
    const state = await fetch(`${runner}/topics/relay%2Fg`).then((r) => r.json())
    expect(state).toMatchObject({ state: 'ended' })
  })

  it('when the node that runs it is killed, an abort from another node ends the topic itself', async () => {
    llm = await startFakeLlm({ tokens: TOKENS, delayMs: 60 })
    const [a, b, [nodeA]] = await twoNodes('relay-k')
    expect((await start(a, 'k')).json.started).toBe(true)
    const viewer = await watch(b, 'k')
    await viewer.waitForEvents(3)
    await killCli(nodeA!)
    // The topic stays open (nobody ends it) until an abort: B waits for A, then ends it itself.
    expect((await fetch(`${b}/topics/relay%2Fk`).then((r) => r.json())).state).toBe('open')
    const started = Date.now()
    const aborted = await post(`${b}/relays/k/abort`)
    expect(aborted.json).toEqual({ id: 'k', topic: 'relay/k', aborted: true, state: 'ended' })
    expect(Date.now() - started).toBeGreaterThanOrEqual(2_000)
    await viewer.ended
    const final = viewer.events.at(-1)!
    expect(final.event).toBe('error')
    expect(JSON.parse(final.data)).toEqual({
      outcome: 'aborted',
      reason: 'aborted',
      message: 'Stopped by an abort; the node running it did not answer within 2000 ms.',
    })
    // A start of the same id now starts nothing.
    expect((await start(b, 'k')).json).toMatchObject({ started: false, state: 'ended' })
    expect(llm.requests).toHaveLength(1)
  })
})
