import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest'
import type { Publication } from '../../src/broker/broker.js'
import { PublishBatcher, type Append, type AppendResult } from '../../src/broker/redis-batch.js'
import { RedisBroker } from '../../src/broker/redis.js'
import { isSseError } from '../../src/errors.js'
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

/** A started broker on its own prefix, the publications its reader delivered, and its client. */
async function started(options: { maxPublishBatchEvents?: number } = {}) {
  const client = redis.client()
  const prefix = `b${++prefixes}:{h}:`
  const broker = new RedisBroker({ client, prefix, blockMs: 200, ...options })
  const delivered: Publication[] = []
  await broker.start({ ...noopSink, publication: (p) => delivered.push(p) })
  // Every publish script call goes through evalsha (eval only when Redis lacks the script).
  const calls = vi.spyOn(client, 'evalsha')
  return { broker, client, prefix, delivered, calls }
}

describe('RedisBroker publish batching', () => {
  it('sends the publishes of one turn in one round trip, in call order, and reads them back in that order', async () => {
    const { broker, delivered, calls } = await started()
    const publishes = Array.from({ length: 50 }, (_, i) =>
      broker.publish({ keys: ['t'], data: `e${i}` }),
    )
    const results = await Promise.all(publishes)
    expect(calls).toHaveBeenCalledTimes(1)
    expect(results.map((p) => p.data)).toEqual(Array.from({ length: 50 }, (_, i) => `e${i}`))
    // Ids increase in call order: Redis appended them in that order.
    const streamIds = results.map((p) => p.id.split('.')[2]!)
    const sorted = [...streamIds].sort((a, b) => {
      const [am, as] = a.split('-').map(BigInt) as [bigint, bigint]
      const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint]
      return am === bm ? Number(as - bs) : Number(am - bm)
    })
    expect(streamIds).toEqual(sorted)
    expect(new Set(streamIds).size).toBe(50)
    await waitFor(() => delivered.length === 50, 'the 50 publications read back')
    expect(delivered.map((p) => [p.id, p.data])).toEqual(results.map((p) => [p.id, p.data]))
    await broker.close()
  })

  it('keeps publishes and commands in one order: a command between publishes is read back between them', async () => {
    const { broker, client, prefix } = await started()
    const order: string[] = []
    const tail = redis.client()
    void broker.publish({ keys: ['t'], data: 'before' })
    void broker.command({ type: 'close-client', clientId: 'c1' })
    await broker.publish({ keys: ['t'], data: 'after' })
    const entries = (await tail.xrange(`${prefix}log`, '-', '+')) as [string, string[]][]
    for (const [, fields] of entries) {
      const x = fields.indexOf('x')
      const d = fields.indexOf('d')
      order.push(x !== -1 ? `command ${fields[x + 1]!}` : `event ${fields[d + 1]!}`)
    }
    expect(order).toEqual([
      'event before',
      'command {"type":"close-client","clientId":"c1"}',
      'event after',
    ])
    expect(client.status).toBe('ready')
    await broker.close()
  })

  it('never sends more than maxPublishBatchEvents events in one round trip, and keeps their order across batches', async () => {
    const { broker, calls, delivered } = await started({ maxPublishBatchEvents: 3 })
    const results = await Promise.all(
      Array.from({ length: 7 }, (_, i) => broker.publish({ keys: ['t'], data: `e${i}` })),
    )
    // 3 + 3 + 1: each call's event count, its 6th argument (after the sha, the key count, the keys).
    expect(calls.mock.calls.map((call) => Number(call[2 + Number(call[1]) + 5]))).toEqual([3, 3, 1])
    await waitFor(() => delivered.length === 7, 'the 7 publications read back')
    expect(delivered.map((p) => p.data)).toEqual(['e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6'])
    expect(delivered.map((p) => p.id)).toEqual(results.map((p) => p.id))
    await broker.close()
  })

  it('rejects every caller of a failing batch with ERR_SSE_BROKER_UNAVAILABLE, and publishes again afterwards', async () => {
    const { broker, calls } = await started()
    calls.mockRejectedValueOnce(new Error('LOADING Redis is loading the dataset in memory'))
    const outcomes = await Promise.allSettled(
      ['a', 'b', 'c'].map((data) => broker.publish({ keys: ['t'], data })),
    )
    expect(calls).toHaveBeenCalledTimes(1)
    for (const outcome of outcomes) {
      expect(outcome.status).toBe('rejected')
      const reason = (outcome as PromiseRejectedResult).reason as Error
      expect(isSseError(reason)).toBe(true)
      expect(reason).toMatchObject({ code: 'ERR_SSE_BROKER_UNAVAILABLE' })
      expect(reason.message).toMatch(/LOADING Redis is loading/)
      expect((reason.cause as Error).message).toMatch(/^LOADING/)
    }
    const next = await broker.publish({ keys: ['t'], data: 'd' })
    expect(next.data).toBe('d')
    await broker.close()
  })

  it('rejects a batch Redis does not answer within publishTimeoutMs, each caller with ERR_SSE_BROKER_UNAVAILABLE', async () => {
    const client = redis.client()
    const broker = new RedisBroker({
      client,
      prefix: `b${++prefixes}:{h}:`,
      blockMs: 200,
      publishTimeoutMs: 100,
    })
    await broker.start(noopSink)
    // Redis never answers this call.
    vi.spyOn(client, 'evalsha').mockReturnValueOnce(new Promise(() => {}))
    const outcomes = await Promise.allSettled([
      broker.publish({ keys: ['t'], data: 'a' }),
      broker.publish({ keys: ['t'], data: 'b' }),
    ])
    expect(outcomes.map((o) => o.status)).toEqual(['rejected', 'rejected'])
    for (const outcome of outcomes)
      expect((outcome as PromiseRejectedResult).reason).toMatchObject({
        code: 'ERR_SSE_BROKER_UNAVAILABLE',
        message: expect.stringMatching(/did not confirm the publish in time/) as unknown,
      })
    await broker.close()
  })

  it('honours an idempotency key inside one batch: the same event twice publishes once, another event under it conflicts', async () => {
    const { broker, prefix, calls, delivered } = await started()
    const [first, retry, other, plain] = await Promise.allSettled([
      broker.publish({ keys: ['t'], data: 'x', idempotencyKey: 'k1' }),
      broker.publish({ keys: ['t'], data: 'x', idempotencyKey: 'k1' }),
      broker.publish({ keys: ['t'], data: 'y', idempotencyKey: 'k1' }),
      broker.publish({ keys: ['t'], data: 'z' }),
    ])
    expect(calls).toHaveBeenCalledTimes(1)
    const firstPublication = (first as PromiseFulfilledResult<Publication>).value
    expect(firstPublication.duplicate).toBeUndefined()
    expect(retry).toMatchObject({
      status: 'fulfilled',
      value: { id: firstPublication.id, duplicate: true, data: 'x' },
    })
    expect(other.status).toBe('rejected')
    expect((other as PromiseRejectedResult).reason).toMatchObject({ code: 'ERR_SSE_CONFLICT' })
    expect(plain.status).toBe('fulfilled')
    // Two entries in the log: the keyed event once, and the plain one.
    const tail = redis.client()
    expect(await tail.xlen(`${prefix}log`)).toBe(2)
    await waitFor(() => delivered.length === 2, 'the two entries read back')
    expect(delivered.map((p) => p.data)).toEqual(['x', 'z'])
    // A later batch sees the key too.
    const later = await broker.publish({ keys: ['t'], data: 'x', idempotencyKey: 'k1' })
    expect(later).toMatchObject({ id: firstPublication.id, duplicate: true })
    await broker.close()
  })

  it('numbers the entries of a batch without gaps (the reader’s hole check sees none)', async () => {
    const { broker, prefix } = await started()
    await Promise.all(
      Array.from({ length: 5 }, (_, i) => broker.publish({ keys: ['t'], data: `${i}` })),
    )
    await broker.publish({ keys: ['t'], data: 'x', idempotencyKey: 'k' })
    await broker.publish({ keys: ['t'], data: 'x', idempotencyKey: 'k' }) // a duplicate: no entry
    await broker.publish({ keys: ['t'], data: 'last' })
    const tail = redis.client()
    const entries = (await tail.xrange(`${prefix}log`, '-', '+')) as [string, string[]][]
    expect(entries.map(([, fields]) => fields[fields.indexOf('n') + 1])).toEqual([
      '1',
      '2',
      '3',
      '4',
      '5',
      '6',
      '7',
    ])
    await broker.close()
  })

  it('refuses a bad maxPublishBatchEvents when built, naming it', () => {
    for (const value of [0, -1, 1.5, Number.NaN])
      expect(
        () => new RedisBroker({ client: redis.client(), maxPublishBatchEvents: value }),
      ).toThrow(/maxPublishBatchEvents/)
  })
})

describe('RedisBroker reading back in the publish answer', () => {
  it('delivers a publish to this node before it answers it, as the memory broker does', async () => {
    const { broker, delivered } = await started()
    for (let i = 0; i < 20; i++) {
      const publication = await broker.publish({ keys: ['t'], data: `e${i}` })
      // No wait: the answer itself read the entry back and delivered it.
      expect(delivered.at(-1)).toMatchObject({ id: publication.id, data: `e${i}` })
    }
    expect(delivered.map((p) => p.data)).toEqual(Array.from({ length: 20 }, (_, i) => `e${i}`))
    await broker.close()
  })

  it("delivers what another node appended before this node's batch, in log order, each once", async () => {
    const { broker, delivered, prefix } = await started()
    const other = new RedisBroker({ client: redis.client(), prefix, blockMs: 200 })
    await other.start(noopSink)
    const results = []
    for (let i = 0; i < 10; i++) {
      results.push(await other.publish({ keys: ['t'], data: `other${i}` }))
      results.push(await broker.publish({ keys: ['t'], data: `own${i}` }))
    }
    await waitFor(() => delivered.length >= 20, 'every entry delivered')
    expect(delivered.map((p) => [p.id, p.data])).toEqual(results.map((p) => [p.id, p.data]))
    await Promise.all([broker.close(), other.close()])
  })

  it('reads on at once when an answer read back a full readCount of other entries (its own are after them)', async () => {
    const prefix = `b${++prefixes}:{h}:`
    const broker = new RedisBroker({
      client: redis.client(),
      prefix,
      blockMs: 200,
      readCount: 2,
      // After a publish the reader waits this long for the next before it reads: longer than
      // the test waits, so only an immediate read delivers the rest.
      readCoalesceMs: 20_000,
    })
    const delivered: Publication[] = []
    await broker.start({ ...noopSink, publication: (p) => delivered.push(p) })
    await broker.publish({ keys: ['t'], data: 'warm' })
    const other = new RedisBroker({ client: redis.client(), prefix, blockMs: 200 })
    await other.start(noopSink)
    for (let i = 0; i < 5; i++) await other.publish({ keys: ['t'], data: `other${i}` })
    await broker.publish({ keys: ['t'], data: 'own' })
    await waitFor(() => delivered.length === 7, 'the rest of the log, read at once', 2_000)
    expect(delivered.map((p) => p.data)).toEqual([
      'warm',
      'other0',
      'other1',
      'other2',
      'other3',
      'other4',
      'own',
    ])
    await Promise.all([broker.close(), other.close()])
  })

  it('resets before the first event of a new log when Redis lost it without dropping the connection (FLUSHALL)', async () => {
    const client = redis.client()
    const broker = new RedisBroker({ client, prefix: `b${++prefixes}:{h}:`, blockMs: 200 })
    const seen: string[] = []
    await broker.start({
      ...noopSink,
      publication: (p) => seen.push(`event ${p.data} ${p.id}`),
      reset: (reason, id) => seen.push(`reset ${reason} ${id}`),
    })
    const before = await broker.publish({ keys: ['t'], data: 'before' })
    await waitFor(() => seen.length === 1, 'the first event')
    await redis.client().flushall()
    const after = await broker.publish({ keys: ['t'], data: 'after' })
    const epoch = /^1~0\.([0-9a-z]+)\./.exec(after.id)![1]!
    expect(before.id).not.toContain(`.${epoch}.`)
    await waitFor(() => seen.length === 3, 'the reset and the event of the new log')
    expect(seen).toEqual([
      `event before ${before.id}`,
      `reset epoch 1~0.${epoch}.0-0`,
      `event after ${after.id}`,
    ])
    await broker.close()
  })

  it('resets a node that does not publish before the first event of a new log (FLUSHALL), with the new epoch', async () => {
    const prefix = `b${++prefixes}:{h}:`
    const reader = new RedisBroker({ client: redis.client(), prefix, blockMs: 200 })
    const seen: string[] = []
    await reader.start({
      ...noopSink,
      publication: (p) => seen.push(`event ${p.data} ${p.id}`),
      reset: (reason, id) => seen.push(`reset ${reason} ${id}`),
    })
    const publisher = new RedisBroker({ client: redis.client(), prefix, blockMs: 200 })
    await publisher.start(noopSink)
    const before = await publisher.publish({ keys: ['t'], data: 'before' })
    await waitFor(() => seen.length === 1, 'the first event')
    await redis.client().flushall()
    const after = await publisher.publish({ keys: ['t'], data: 'after' })
    const epoch = /^1~0\.([0-9a-z]+)\./.exec(after.id)![1]!
    await waitFor(() => seen.length === 3, 'the reset and the event of the new log')
    expect(seen).toEqual([
      `event before ${before.id}`,
      `reset epoch 1~0.${epoch}.0-0`,
      `event after ${after.id}`,
    ])
    await Promise.all([reader.close(), publisher.close()])
  })

  it('leaves it to the reader when an answer that read back was lost (a timed-out batch): nothing skipped, nothing twice', async () => {
    const client = redis.client()
    const broker = new RedisBroker({
      client,
      prefix: `b${++prefixes}:{h}:`,
      blockMs: 200,
      publishTimeoutMs: 200,
      // The reader waits this long for the next publish after one: it is not blocked in an
      // XREAD that the lost batch's entry would wake, so only the answers read.
      readCoalesceMs: 5_000,
    })
    const delivered: Publication[] = []
    await broker.start({ ...noopSink, publication: (p) => delivered.push(p) })
    await broker.publish({ keys: ['t'], data: 'warm' })
    // Redis runs this batch (its entry is appended and the read cursor moves), but its answer
    // never reaches the broker.
    const evalsha = client.evalsha.bind(client) as (...args: unknown[]) => Promise<unknown>
    vi.spyOn(client, 'evalsha').mockImplementationOnce((...args: unknown[]) => {
      void evalsha(...args)
      return new Promise(() => {})
    })
    await expect(broker.publish({ keys: ['t'], data: 'lost answer' })).rejects.toMatchObject({
      code: 'ERR_SSE_BROKER_UNAVAILABLE',
    })
    const next = await broker.publish({ keys: ['t'], data: 'next' })
    await waitFor(() => delivered.length >= 3, 'both entries delivered')
    expect(delivered.map((p) => p.data)).toEqual(['warm', 'lost answer', 'next'])
    expect(delivered[2]!.id).toBe(next.id)
    await broker.publish({ keys: ['t'], data: 'after' })
    await waitFor(() => delivered.length >= 4, 'the next entry')
    expect(delivered.map((p) => p.data)).toEqual(['warm', 'lost answer', 'next', 'after'])
    await broker.close()
  })
})

describe('PublishBatcher', () => {
  const append = (data: string): Append => ({
    endKeys: [],
    close: false,
    fields: ['d', data],
    once: null,
  })

  /** A batcher whose batches wait for the test: what each sent, and how to answer it. */
  function recordingBatcher(maxEvents: number, maxInFlight: number) {
    const sent: string[][] = []
    const answers: ((results: AppendResult[]) => void)[] = []
    const batcher = new PublishBatcher(
      (appends) =>
        new Promise((resolve) => {
          sent.push(appends.map((a) => a.fields[1]!))
          answers.push(resolve)
        }),
      maxEvents,
      2000,
      maxInFlight,
    )
    return { batcher, sent, answers }
  }

  it('queues appends while a batch is in flight and sends them together after it (group commit)', async () => {
    const { batcher, sent, answers } = recordingBatcher(100, 1)
    const a = batcher.add(append('a'))
    await waitFor(() => sent.length === 1, 'the first batch')
    // In flight: these wait for it, whatever turns they come in.
    const b = batcher.add(append('b'))
    await new Promise((resolve) => setImmediate(resolve))
    const c = batcher.add(append('c'))
    await new Promise((resolve) => setImmediate(resolve))
    expect(sent).toEqual([['a']])
    answers[0]!([['1-0', 'e']])
    await expect(a).resolves.toEqual(['1-0', 'e'])
    await waitFor(() => sent.length === 2, 'the second batch')
    expect(sent[1]).toEqual(['b', 'c'])
    answers[1]!([
      ['1-1', 'e'],
      ['1-2', 'e', 'duplicate'],
    ])
    await expect(b).resolves.toEqual(['1-1', 'e'])
    await expect(c).resolves.toEqual(['1-2', 'e', 'duplicate'])
  })

  it('sends a full queue at once even while a batch is in flight, and gives each batch what is left of its oldest append’s timeout', async () => {
    const sent: { data: string[]; timeoutMs: number }[] = []
    const batcher = new PublishBatcher(
      (appends, timeoutMs) => {
        sent.push({ data: appends.map((a) => a.fields[1]!), timeoutMs })
        return new Promise(() => {})
      },
      2,
      2000,
    )
    void batcher.add(append('a'))
    await waitFor(() => sent.length === 1, 'the first batch')
    void batcher.add(append('b'))
    expect(sent).toHaveLength(1)
    void batcher.add(append('c')) // the queue is full: sent now
    expect(sent.map((s) => s.data)).toEqual([['a'], ['b', 'c']])
    for (const { timeoutMs } of sent) {
      expect(timeoutMs).toBeGreaterThan(1500)
      expect(timeoutMs).toBeLessThanOrEqual(2000)
    }
  })

  it('keeps up to maxInFlight batches on their way at once; later appends wait for a free slot, in order', async () => {
    const { batcher, sent, answers } = recordingBatcher(100, 2)
    const a = batcher.add(append('a'))
    await waitFor(() => sent.length === 1, 'the first batch')
    // A second slot: sent in its own turn without waiting for the first answer.
    const b = batcher.add(append('b'))
    await waitFor(() => sent.length === 2, 'the second batch, the first still in flight')
    const c = batcher.add(append('c'))
    const d = batcher.add(append('d'))
    await new Promise((resolve) => setImmediate(resolve))
    await new Promise((resolve) => setImmediate(resolve))
    expect(sent).toEqual([['a'], ['b']])
    answers[0]!([['1-0', 'e']])
    await expect(a).resolves.toEqual(['1-0', 'e'])
    await waitFor(() => sent.length === 3, 'the third batch, in the freed slot')
    expect(sent[2]).toEqual(['c', 'd'])
    answers[1]!([['1-1', 'e']])
    answers[2]!([
      ['1-2', 'e'],
      ['1-3', 'e'],
    ])
    expect(await Promise.all([b, c, d])).toEqual([
      ['1-1', 'e'],
      ['1-2', 'e'],
      ['1-3', 'e'],
    ])
  })

  it('answered() settles once every append made so far has its answer, queued and failed ones included', async () => {
    const answers: { resolve: (r: AppendResult[]) => void; reject: (e: Error) => void }[] = []
    const batcher = new PublishBatcher(
      () => new Promise((resolve, reject) => answers.push({ resolve, reject })),
      100,
      2000,
      1,
    )
    expect(batcher.answered()).toBeNull()
    const a = batcher.add(append('a'))
    await waitFor(() => answers.length === 1, 'the first batch')
    const b = batcher.add(append('b')) // queued behind the one in flight
    let settled = false
    void batcher.answered()!.then(() => (settled = true))
    answers[0]!.resolve([['1-0', 'e']])
    await a
    await waitFor(() => answers.length === 2, 'the queued append sent')
    expect(settled).toBe(false)
    answers[1]!.reject(new Error('READONLY You can not write against a read only replica.'))
    await expect(b).rejects.toMatchObject({ code: 'ERR_SSE_BROKER_UNAVAILABLE' })
    await waitFor(() => settled, 'answered() settled after the last batch failed')
    expect(batcher.answered()).toBeNull()
  })
})
