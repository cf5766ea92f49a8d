/**
 * The Redis broker's read coalescing: entries read while this node's own publishes are on their
 * way to Redis wait for them (at most `readCoalesceMs`), and the hub gets both in one delivery,
 * so each connection gets them in one socket write; only for entries that reach many local
 * connections. "One delivery" is observed as one synchronous run of `sink.publication` calls.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { BrokerSink } from '../../src/broker/broker.js'
import { RedisBroker } from '../../src/broker/redis.js'
import type { RedisClient } from '../../src/broker/redis-client.js'
import { startRedis, type TestRedis } from '../helpers/redis-server.js'
import { waitFor } from '../helpers/wait.js'
import { noopSink } from './contract.js'

let redis: TestRedis
let prefixes = 0
beforeAll(async () => {
  redis = await startRedis()
})
afterAll(async () => {
  await redis?.stop()
})

/** A sink that records each synchronous run of deliveries as one group of event data. */
function recorder(reach: ((keys: readonly string[]) => number) | undefined) {
  const groups: string[][] = []
  let open: string[] | null = null
  const sink: BrokerSink = {
    ...noopSink,
    publication: (publication) => {
      if (open === null) {
        const group: string[] = []
        open = group
        groups.push(group)
        queueMicrotask(() => (open = null))
      }
      open.push(publication.data)
    },
    ...(reach === undefined ? {} : { reach }),
  }
  return { groups, sink }
}

/**
 * Node A (under test, its publish script calls held until `open()`) and node B on the same
 * prefix. `replies` lists the data of every entry A's reader got from Redis, as it got them.
 */
async function twoNodes(options: {
  readCoalesceMs: number
  reach: ((keys: readonly string[]) => number) | undefined
}) {
  const prefix = `c${++prefixes}:{h}:`
  const clientA = redis.client()
  const replies: string[] = []
  // The reader is the client's duplicate: record what its XREADs return.
  const duplicate = clientA.duplicate.bind(clientA)
  vi.spyOn(clientA, 'duplicate').mockImplementation((...args: []) => {
    const reader = duplicate(...args)
    const xread = reader.xread.bind(reader) as (...a: unknown[]) => Promise<unknown>
    vi.spyOn(reader, 'xread').mockImplementation(((...a: unknown[]) =>
      xread(...a).then((reply) => {
        const streams = (reply ?? []) as [string, [string, string[]][]][]
        for (const [, fields] of streams[0]?.[1] ?? [])
          replies.push(fields[fields.indexOf('d') + 1]!)
        return reply
      })) as never)
    return reader
  })
  const a = new RedisBroker({
    client: clientA as RedisClient,
    prefix,
    blockMs: 500,
    readCoalesceMs: options.readCoalesceMs,
  })
  const recorded = recorder(options.reach)
  await a.start(recorded.sink)
  let open = (): void => {}
  const gate = new Promise<void>((resolve) => (open = resolve))
  const evalsha = clientA.evalsha.bind(clientA) as (...args: unknown[]) => Promise<unknown>
  vi.spyOn(clientA, 'evalsha').mockImplementationOnce((...args: unknown[]) =>
    gate.then(() => evalsha(...args)),
  )
  const b = new RedisBroker({ client: redis.client(), prefix, blockMs: 500 })
  await b.start(noopSink)
  return { a, b, groups: recorded.groups, replies, open }
}

/** Two turns of the event loop: what a hold would have delivered by now, it has. */
async function turns(): Promise<void> {
  for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve))
}

describe('RedisBroker read coalescing', () => {
  it.each([
    { sink: 'that says an entry reaches 1,000 connections', reach: () => 1_000 },
    { sink: 'that cannot say how many connections an entry reaches', reach: undefined },
  ])(
    'holds what it read while its own publish is in flight, then delivers both in one run (a sink $sink)',
    async ({ reach }) => {
      const { a, b, groups, replies, open } = await twoNodes({ readCoalesceMs: 5_000, reach })
      const own = a.publish({ keys: ['news'], data: 'own' }) // held before it reaches Redis
      await b.publish({ keys: ['news'], data: 'other' })
      await waitFor(() => replies.includes('other'), "A's reader got B's event")
      await turns()
      expect(groups).toEqual([]) // held: A's own publish is still on its way
      open()
      await own
      await waitFor(() => groups.length > 0, 'the held delivery')
      expect(groups).toEqual([['other', 'own']])
      await Promise.all([a.close(), b.close()])
    },
  )

  it('holds at most readCoalesceMs: past it, what was read goes out alone', async () => {
    const { a, b, groups, replies, open } = await twoNodes({
      readCoalesceMs: 50,
      reach: () => 1_000,
    })
    const own = a.publish({ keys: ['news'], data: 'own' })
    await b.publish({ keys: ['news'], data: 'other' })
    await waitFor(() => replies.includes('other'), "A's reader got B's event")
    const readAt = performance.now()
    await waitFor(() => groups.length === 1, 'the delivery after the bound')
    // Timers never fire early; the 5 ms allow for the poll that saw the reply.
    expect(performance.now() - readAt).toBeGreaterThanOrEqual(45)
    expect(groups).toEqual([['other']])
    open()
    await own
    await waitFor(() => groups.length === 2, 'the own publish, delivered on its own')
    expect(groups).toEqual([['other'], ['own']])
    await Promise.all([a.close(), b.close()])
  })

  it.each([
    {
      when: 'entries reach few local connections (one-to-one: nothing to save)',
      readCoalesceMs: 5_000,
      reach: () => 1,
    },
    { when: 'readCoalesceMs is 0', readCoalesceMs: 0, reach: () => 1_000 },
  ])('does not hold when $when', async ({ readCoalesceMs, reach }) => {
    const { a, b, groups, open } = await twoNodes({ readCoalesceMs, reach })
    const own = a.publish({ keys: ['news'], data: 'own' })
    await b.publish({ keys: ['news'], data: 'other' })
    // Delivered while A's own publish is still held before Redis: no coalescing wait.
    await waitFor(() => groups.length === 1, "B's event, delivered at once")
    expect(groups).toEqual([['other']])
    open()
    await own
    await waitFor(() => groups.length === 2, 'the own publish')
    expect(groups).toEqual([['other'], ['own']])
    await Promise.all([a.close(), b.close()])
  })

  it('refuses a bad readCoalesceMs or maxPublishBatchesInFlight when built, naming it', () => {
    for (const value of [-1, 1.5, Number.NaN])
      expect(() => new RedisBroker({ client: redis.client(), readCoalesceMs: value })).toThrow(
        /readCoalesceMs/,
      )
    for (const value of [0, -1, 1.5])
      expect(
        () => new RedisBroker({ client: redis.client(), maxPublishBatchesInFlight: value }),
      ).toThrow(/maxPublishBatchesInFlight/)
  })
})
