import { afterEach, describe, expect, it } from 'vitest'
import type { BrokerSink, Resume } from '../../src/broker/broker.js'
import { MemoryBroker, createHub, type Hub } from '../../src/index.js'
import { waitFor } from '../helpers/wait.js'

/** A memory broker whose resumes answer only when released, and whose sink a test can reach. */
class GatedBroker extends MemoryBroker {
  hubSink: BrokerSink | null = null
  private release: () => void = () => {}
  private readonly gate = new Promise<void>((resolve) => (this.release = resolve))

  override start(sink: BrokerSink): Promise<void> {
    this.hubSink = sink
    return super.start(sink)
  }

  override resume(keys: readonly string[], lastEventId: string | undefined): Promise<Resume> {
    // The snapshot is still taken in the calling tick; only the answer waits.
    const answer = super.resume(keys, lastEventId)
    return this.gate.then(() => answer)
  }

  open(): void {
    this.release()
  }
}

const hubs: Hub[] = []
afterEach(async () => {
  for (const hub of hubs.splice(0)) await hub.close()
})

async function readAll(response: Response, until: (text: string) => boolean): Promise<string> {
  const reader = response.body!.getReader()
  const decoder = new TextDecoder()
  let text = ''
  while (!until(text)) {
    const { value, done } = await reader.read()
    if (done) break
    text += decoder.decode(value, { stream: true })
  }
  await reader.cancel()
  return text
}

describe('a broker-wide reset while a connection replays', () => {
  it('goes after the replay and the live events queued before it, with its id, before those after it', async () => {
    const broker = new GatedBroker({ epoch: 'e1' })
    const hub = createHub({ broker, heartbeatMs: null, retryMs: null })
    hubs.push(hub)
    await hub.ready
    await hub.publish({ topic: 'a', data: 'old' })
    const { response } = hub.subscribeWeb(
      new Request('http://x/events?topic=a', { headers: { 'last-event-id': 'e1-0' } }),
    )
    await waitFor(() => hub.stats().connections === 1, 'registered')
    await hub.publish({ topic: 'a', data: 'before reset' })
    broker.hubSink!.reset('epoch', 'e1-2')
    await hub.publish({ topic: 'a', data: 'after reset' })
    broker.open()
    const text = await readAll(await response, (t) => t.endsWith('id: e1-3\n\n'))
    expect(text).toBe(
      'id: e1-1\ndata: old\n\n' +
        'id: e1-2\ndata: before reset\n\n' +
        'event: ssehub.reset\nid: e1-2\ndata: {"reason":"epoch","topics":["a"]}\n\n' +
        'id: e1-3\ndata: after reset\n\n' +
        'id: e1-3\n\n',
    )
    await broker.close()
  })
})
