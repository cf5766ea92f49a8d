import { describe, expect, it } from 'vitest'
import {
  MEMORY_BROKER_DEFAULTS,
  MemoryBroker,
  resolveMemoryBrokerOptions,
} from '../../src/broker/memory.js'
import { describeBrokerContract, noopSink } from './contract.js'

describeBrokerContract('memory', {
  make: (options) => Promise.resolve(new MemoryBroker(options)),
})

describe('MemoryBroker', () => {
  it('uses <epoch>-<seq> ids and resets ids of another epoch', async () => {
    const broker = new MemoryBroker({ epoch: 'abc' })
    await broker.start(noopSink)
    expect((await broker.publish({ keys: ['a'], data: 'x' })).id).toBe('abc-1')
    expect((await broker.resume(['a'], 'other-1')).reset?.reason).toBe('epoch')
    expect((await broker.resume(['a'], 'abc-2')).reset?.reason).toBe('unknown')
    expect((await broker.resume(['a'], 'abc-0')).replay.map((r) => r.id)).toEqual(['abc-1'])
  })

  it('bounds history by count and keeps a contiguous window', async () => {
    const broker = new MemoryBroker({ epoch: 'e', historyMaxEvents: 100 })
    await broker.start(noopSink)
    for (let i = 0; i < 1000; i++) await broker.publish({ keys: ['a'], data: String(i) })
    expect(broker.health().details).toMatchObject({ historyEvents: 100, lastId: 'e-1000' })
    const resume = await broker.resume(['a'], 'e-900')
    expect(resume.reset).toBeNull()
    expect(resume.replay.map((r) => r.publication.data)).toEqual(
      Array.from({ length: 100 }, (_, i) => String(900 + i)),
    )
    expect((await broker.resume(['a'], 'e-899')).reset?.reason).toBe('expired')
  })

  it('forgets finished topics after endedTopicTtlMs and beyond maxEndedTopics', async () => {
    const broker = new MemoryBroker({ epoch: 'e', maxEndedTopics: 2 })
    await broker.start(noopSink)
    for (const topic of ['t1', 't2', 't3'])
      await broker.publish({ keys: [topic], data: 'end', close: true })
    expect(broker.health().details).toMatchObject({ endedTopics: 2 })
    expect([...(await broker.resume(['t1'], 'e-3')).ended]).toEqual([])
    expect([...(await broker.resume(['t3'], 'e-3')).ended]).toEqual(['t3'])
  })

  it('validates its options', () => {
    expect(() => new MemoryBroker({ historyMaxEvents: 0 })).toThrow(/historyMaxEvents/)
    expect(() => new MemoryBroker({ epoch: 'A-B' })).toThrow(/epoch/)
    expect(() => new MemoryBroker({ historyMaxAgeMs: 0 })).toThrow(
      /^Expected `historyMaxAgeMs` to be a positive integer or null, got `0`/,
    )
    expect(() => new MemoryBroker({ endedTopicTtlMs: -1 })).toThrow(/`endedTopicTtlMs`/)
    expect(() => new MemoryBroker({ maxEndedTopics: 1.5 })).toThrow(/`maxEndedTopics`/)
  })

  it('applies MEMORY_BROKER_DEFAULTS, a frozen object', () => {
    expect(Object.isFrozen(MEMORY_BROKER_DEFAULTS)).toBe(true)
    const { epoch, ...rest } = resolveMemoryBrokerOptions()
    expect(rest).toEqual(MEMORY_BROKER_DEFAULTS)
    expect(epoch).toMatch(/^[0-9a-z]{8}$/)
    expect(resolveMemoryBrokerOptions({ historyMaxAgeMs: null }).historyMaxAgeMs).toBeNull()
  })
})
