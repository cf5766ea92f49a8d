import { afterEach, describe, expect, it, vi } from 'vitest'
import type { BrokerSink, Resume } from '../../src/broker/broker.js'
import {
  ErrorCodes,
  MemoryBroker,
  SseError,
  createHub,
  type CloseReason,
  type Connection,
  type Hub,
} from '../../src/index.js'
import { waitFor } from '../helpers/wait.js'

/** A memory broker a test can reach the hub's sink of, and whose resumes may be held back. */
class ProbeBroker extends MemoryBroker {
  hubSink: BrokerSink | null = null
  holdResumes = false

  override start(sink: BrokerSink): Promise<void> {
    this.hubSink = sink
    return super.start(sink)
  }

  override resume(keys: readonly string[], lastEventId: string | undefined): Promise<Resume> {
    const answer = super.resume(keys, lastEventId)
    // Held: the connection stays in its replay (never announced) for as long as the test runs.
    return this.holdResumes ? new Promise<Resume>(() => {}) : answer
  }
}

const hubs: Hub[] = []
afterEach(async () => {
  for (const hub of hubs.splice(0)) await hub.close()
})

function makeHub(options: Parameters<typeof createHub>[0] = {}): Hub {
  const hub = createHub({ heartbeatMs: null, epoch: 'e1', ...options })
  hubs.push(hub)
  return hub
}

const request = (query: string): Request => new Request(`http://hub.test/events?${query}`)

describe('dropped', () => {
  it('tells of an eviction at a limit, with the connection it closed, before closed', async () => {
    const hub = makeHub({ maxConnections: 1, overflow: 'evict' })
    const heard: string[] = []
    hub.on('dropped', (connection, reason) =>
      heard.push(
        `dropped ${connection.id} ${connection.clientId} ${connection.remoteAddress} ${reason}`,
      ),
    )
    hub.on('closed', (connection, reason) => heard.push(`closed ${connection.id} ${reason}`))
    const first = hub.subscribeWeb(request('topic=a&clientId=u1'), undefined, '192.0.2.1')
    await first.response
    await waitFor(() => first.connection.state === 'open', 'the first stream live')
    const second = hub.subscribeWeb(request('topic=a'), undefined, '192.0.2.2')
    await second.response
    expect(heard).toEqual([
      `dropped ${first.connection.id} u1 192.0.2.1 evicted`,
      `closed ${first.connection.id} evicted`,
    ])
    expect(second.connection.state).not.toBe('closed')
  })

  it('tells of a slow consumer also during its replay, where closed is not emitted', async () => {
    const broker = new ProbeBroker({ epoch: 'e1' })
    const hub = makeHub({ broker, maxQueuedBytes: 1024 })
    await hub.ready
    broker.holdResumes = true
    const dropped: [Connection, CloseReason][] = []
    const closed: CloseReason[] = []
    hub.on('dropped', (connection, reason) => dropped.push([connection, reason]))
    hub.on('closed', (_connection, reason) => closed.push(reason))
    const { connection } = hub.subscribeWeb(request('topic=a&clientId=u2'), undefined, '192.0.2.3')
    // Sent by the application before the stream is live: held behind the replay, bounded.
    connection.send({ data: 'x'.repeat(600) })
    expect(dropped).toEqual([])
    connection.send({ data: 'x'.repeat(600) })
    expect(dropped).toEqual([[connection, 'slow-consumer']])
    expect(connection.remoteAddress).toBe('192.0.2.3')
    expect(closed).toEqual([])
    expect(hub.stats().slowConsumerCloses).toBe(1)
  })
})

describe('broker outages', () => {
  const outage = (): SseError =>
    new SseError(ErrorCodes.BROKER_UNAVAILABLE, 'The backend went away.', {
      cause: new Error('Connection is closed.'),
    })

  it('are told once when they start and once when they end, with how long they lasted', async () => {
    vi.useFakeTimers({ toFake: ['Date'] })
    try {
      const broker = new ProbeBroker({ epoch: 'e1' })
      const hub = makeHub({ broker })
      await hub.ready
      const heard: string[] = []
      hub.on('brokerFailed', (error) => heard.push(`failed ${error.message}`))
      hub.on('brokerRecovered', (downMs) => heard.push(`recovered after ${downMs} ms`))
      hub.on('error', (error) => heard.push(`error ${error.message}`))
      const sink = broker.hubSink!
      // A recovery with no outage before it says nothing.
      sink.recovered()
      sink.unavailable(outage())
      // A broker that repeats itself is not a second outage.
      sink.unavailable(outage())
      vi.advanceTimersByTime(1_500)
      sink.recovered()
      sink.recovered()
      expect(heard).toEqual(['failed The backend went away.', 'recovered after 1500 ms'])
      sink.unavailable(outage())
      sink.recovered()
      expect(heard).toHaveLength(4)
    } finally {
      vi.useRealTimers()
    }
  })

  it("go to 'error' when nobody listens to brokerFailed: an outage is never silent", async () => {
    const broker = new ProbeBroker({ epoch: 'e1' })
    const hub = makeHub({ broker })
    await hub.ready
    const errors: Error[] = []
    hub.on('error', (error) => errors.push(error))
    const failure = outage()
    broker.hubSink!.unavailable(failure)
    expect(errors).toEqual([failure])
  })
})
